"""benchmarks/rlhf_run.py: the prompts and gold references a GRPO run is given."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from rlhf_run import distinct_prompts  # noqa: E402

from gramr2_cli.core.errors import GramrError  # noqa: E402


def _shard(tmp_path, rows):
    p = tmp_path / "part-00000-of-00001.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


ROWS = [{"id": "1", "prompt": "Upper 'ox'.", "response_a": "OX", "response_b": "Ox", "label": "A",
         "meta": {"gold_label": "A"}},
        {"id": "2", "prompt": "Upper 'ox'.", "response_a": "Ox", "response_b": "OX", "label": "B",
         "meta": {"gold_label": "B"}},                    # the same prompt swapped: the first record counts
        {"id": "3", "prompt": "Smaller: 1.5 or 1.45?", "response_a": "1.5", "response_b": "1.45", "label": "B",
         "meta": {"gold_label": "B"}}]


def test_references_are_the_gold_right_or_wrong_response(tmp_path):
    path = _shard(tmp_path, ROWS)
    assert distinct_prompts(path, 10) == (["Upper 'ox'.", "Smaller: 1.5 or 1.45?"], None)
    assert distinct_prompts(path, 10, "right")[1] == ["OX", "1.45"]
    assert distinct_prompts(path, 10, "wrong")[1] == ["Ox", "1.5"]
    assert distinct_prompts(path, 1, "right") == (["Upper 'ox'."], ["OX"])


def test_a_reference_needs_a_gold_label(tmp_path):
    path = _shard(tmp_path, [{"id": "u", "prompt": "p", "response_a": "a", "response_b": "b"}])
    assert distinct_prompts(path, 10) == (["p"], None)
    with pytest.raises(GramrError, match="no gold label"):
        distinct_prompts(path, 10, "right")


def test_results_never_land_on_the_prompts(tmp_path):
    """`--plot` (the second of the two files the run writes, after `--out`) naming the prompts shard is refused
    before any training: the shard is unchanged."""
    import os
    import subprocess
    path = _shard(tmp_path, ROWS)
    before = path.read_bytes()
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "rlhf_run.py"
    p = subprocess.run([sys.executable, str(script), "--tiny", "--steps", "1", "--prompts", str(path), "--plot",
                        str(path), "--out", str(tmp_path / "r.json")], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert p.returncode == 1 and "the output is an input" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert path.read_bytes() == before and not (tmp_path / "r.json").exists()
