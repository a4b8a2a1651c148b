"""`gramr2 plan` against the real trainer: on the tiny model and the synthetic shard, the plan's examples,
too-long skips, tokens and optimizer steps are what `pretrain` then does."""

from __future__ import annotations

import json

import pytest

from gramr2_cli import recipe
from gramr2_cli.core import models, readers
from gramr2_cli.stages import plan, training
from gramr2_cli.train import objectives


def _recipe(tmp_path, tiny_model, **train):
    lines = [f"model: {tiny_model}", "seed: 0", "train:", "  objective: reasoning", "  lr: 1.0e-3",
             "  save_steps: 1000", "  logging_steps: 1", "  warmup_ratio: 0.0"]
    lines += [f"  {k}: {v}" for k, v in train.items()]
    path = tmp_path / "recipe.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("train", [
    {"epochs": 2.0, "max_steps": -1, "batch_size": 3, "grad_accum": 2},   # whole epochs: tokens exact
    {"max_steps": 3, "batch_size": 4, "grad_accum": 1},                   # max_steps: steps exact
])
def test_plan_matches_what_pretrain_does(tiny_model, tiny_pairs, tmp_path, train):
    tok = models.load_tokenizer(str(tiny_model))
    recs = readers.read_all([tiny_pairs])
    lengths = sorted(len(objectives.build_reasoning(tok, r, "gramr2-v1").input_ids) for r in recs)
    cut = lengths[-4] - 1                                   # the 3+ longest examples are too long
    path = _recipe(tmp_path, tiny_model, max_length=cut, **train)
    cfg = recipe.load(path)
    p = plan.run(cfg, [tiny_pairs], stage=plan.infer_stage(path), gpus=1)
    s = training.pretrain(recipe.load(path), [tiny_pairs], tmp_path / "rm")
    tr = p["training"]
    assert s.skipped["too_long"] >= 3 and p["model"]["tokens"] == "tokenizer"
    assert (tr["used"], tr["skipped"]) == (s.counts["examples"], s.skipped)
    assert tr["steps"] == s.metrics["steps"]
    if train["max_steps"] == -1:   # two whole epochs: exact
        assert tr["tokens_exact"] and tr["tokens"] == s.metrics["tokens_seen"] == 2 * tr["tokens_per_epoch"]
    else:                          # 3 batches of 4 in random order: an estimate, the truth inside the bounds
        assert not tr["tokens_exact"] and tr["tokens"] == round(12 * tr["tokens_per_epoch"] / tr["used"])
        kept = sorted(n for n in lengths if n <= cut)
        assert sum(kept[:12]) <= s.metrics["tokens_seen"] <= sum(kept[-12:])
    ts = json.loads((tmp_path / "rm" / "training_summary.json").read_text())
    assert ts["examples_used"] == tr["used"]
