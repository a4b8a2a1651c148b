"""Kill/resume of a training run: SIGKILL of a real subprocess after the first checkpoint, then the same command
(in this process: CliRunner, no second interpreter start) refused without --resume and finished with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_helpers import make_pairs, write_pairs
from typer.testing import CliRunner

from gramr2_cli import recipe
from gramr2_cli.cli import app
from gramr2_cli.core import shards
from gramr2_cli.train import core

GRAMR2 = str(Path(sys.executable).with_name("gramr2"))
SETS = ["-s", "train.max_steps=8", "-s", "train.save_steps=2", "-s", "train.batch_size=2", "-s", "train.lr=1e-3",
        "-s", "train.logging_steps=1", "-s", "train.warmup_ratio=0",
        "-s", "train.precision=fp32"]   # weights compared at 1e-5: not `auto` (bf16 on a native-bf16 CPU)


def _env(**extra):
    return {**os.environ, "HF_HUB_OFFLINE": "1", "GRAMR2_THREADS": "1", **extra}


def test_resume_after_sigkill_matches_uninterrupted(tiny_model, tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", make_pairs(8))
    out = tmp_path / "killed"
    cmd = [GRAMR2, "pretrain", str(data), "-o", str(out), "--model", str(tiny_model), *SETS]
    proc = subprocess.Popen(cmd, env=_env(GRAMR2_DEBUG_STEP_SECONDS="0.6"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    first = out / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    deadline = time.time() + 120
    while not first.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert not shards.is_done(out)
    killed_at = core.latest_checkpoint(out)
    assert killed_at is not None and int(killed_at.name.split("-")[1]) < 8

    torch.set_num_threads(1)
    again = CliRunner().invoke(app, cmd[1:])                      # without --resume: refused
    assert again.exit_code == 1 and "--resume" in again.stderr
    done = CliRunner().invoke(app, [*cmd[1:], "--resume"])
    assert done.exit_code == 0, done.stderr[-2000:]
    assert shards.is_done(out)
    ts = json.loads((out / "training_summary.json").read_text())
    assert ts["steps"] == 8 and ts["resumed_from"] == killed_at.name

    # the same run without a kill: same step count, same loss curve, same weights
    cfg = recipe.load(None, [s for s in SETS if s != "-s"], model=str(tiny_model))
    core.train(cfg, [data], tmp_path / "straight", stage="pretrain")
    ref = json.loads((tmp_path / "straight" / "training_summary.json").read_text())
    assert [s for s, _ in ts["loss_curve"]] == [s for s, _ in ref["loss_curve"]] == list(range(1, 9))
    assert [l for _, l in ts["loss_curve"]] == pytest.approx([l for _, l in ref["loss_curve"]], rel=1e-4)
    from safetensors.torch import load_file
    a, b = load_file(out / "model.safetensors"), load_file(tmp_path / "straight" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
