"""Two processes (gloo DDP on CPU via torchrun) on the tiny model: both ranks end with the same parameters, and
the saved model is what rank 0 holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import make_pairs, write_pairs

from gramr2_cli import recipe
from gramr2_cli.core import models
from gramr2_cli.train import objectives

HERE = Path(__file__).parent


def test_two_process_ddp_ranks_agree(tiny_model, tmp_path):
    pairs = make_pairs(12)       # 3 steps x 2 ranks x batch 2 = 12 examples = exactly one epoch: each seen once
    data = write_pairs(tmp_path / "pairs.jsonl", pairs)
    out = tmp_path / "ddp" / "model"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "train_ddp_worker.py"), str(tiny_model), str(data), str(out)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    d0 = json.loads((out.parent / "rank0.json").read_text())
    d1 = json.loads((out.parent / "rank1.json").read_text())
    assert d0["steps"] == d1["steps"] == 3
    assert d0["sums"] == d1["sums"] and d0["abs"] == d1["abs"]          # DDP kept the replicas identical
    saved = models.load_model(str(out), device="cpu")
    sums = {n: p.detach().double().sum().item() for n, p in saved.named_parameters()}
    assert sums == pytest.approx(d0["sums"], rel=1e-9, abs=1e-9)
    base = models.load_model(str(tiny_model), device="cpu")
    assert any(not torch.equal(p, q) for p, q in zip(saved.parameters(), base.parameters()))
    ts = json.loads((out / "training_summary.json").read_text())
    assert ts["world_size"] == 2 and ts["examples_used"] == 12
    # one epoch over both ranks: tokens seen = the non-padding tokens of all 12 examples, each counted once
    cfg = recipe.load(None, [], model=str(tiny_model))
    rows, _, _ = objectives.build_dataset(models.load_tokenizer(str(tiny_model)), pairs, "reasoning",
                                          cfg.train.max_length, cfg.prompt)
    assert len(rows) == 12 and ts["tokens_seen"] == sum(len(r["input_ids"]) for r in rows)
