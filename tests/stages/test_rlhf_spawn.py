"""Spawn safety (issue 14 item 6): the in-process reward from a training script with no `__main__` guard."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gramr2_cli import recipe, rlhf
from gramr2_cli.core.errors import GramrError

SRC = str(Path(rlhf.__file__).resolve().parents[1])

UNGUARDED = textwrap.dedent("""
    import sys
    from gramr2_cli import recipe
    from gramr2_cli.rlhf import make_trl_reward
    # as docs/rlhf.md shows it, no `if __name__ == "__main__":`; the engine is left at its default (auto), and
    # 8 new tokens instead of the default's hundreds (the tiny judge never stops, it would write them all)
    fn = make_trl_reward(sys.argv[1], cfg=recipe.load(None, ["generate.max_new_tokens=8"], model=sys.argv[1]))
    out = fn(prompts=["2+2?", "2+2?"], completions=["4", "5"], reference=["four", "four"])
    print(fn.client.engine.name, out)
""")


def test_an_unguarded_script_gets_the_hf_engine_in_process(tiny_model, tmp_path):
    script = tmp_path / "train_grpo.py"
    script.write_text(UNGUARDED)
    env = dict(os.environ, PYTHONPATH=SRC)
    r = subprocess.run([sys.executable, str(script), str(tiny_model)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    # hf, not vLLM (whose engine core would re-import this script); the tiny judge parses nothing → masked
    assert r.stdout.strip().splitlines()[-1] == "hf [None, None]"


def test_vllm_named_explicitly_is_kept_and_a_spawned_reimport_fails_with_one_line(monkeypatch):
    cfg = recipe.load(None, ["generate.engine=vllm"])
    assert rlhf.local_config(cfg).generate.engine == "vllm"
    assert rlhf.local_config(recipe.load(None, [])).generate.engine == "hf"
    fn = rlhf.make_trl_reward("unused-model", cfg=cfg)
    monkeypatch.setattr(sys.modules["__main__"], "__name__", "__mp_main__")
    with pytest.raises(GramrError, match="child process re-imports your script") as e:
        fn(["p"], ["a"], reference=["b"])
    assert 'if __name__ == "__main__":' in e.value.hint
