"""Run by `torchrun --nproc_per_node 2` from test_train_ddp.py: train, then write this rank's parameter digest."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from transformers import TrainerCallback

from gramr2_cli import recipe
from gramr2_cli.train import core


class Digest(TrainerCallback):
    def __init__(self, path: Path):
        self.path = path

    def on_train_end(self, args, state, control, model=None, **kwargs):
        params = {n: p.detach().double() for n, p in model.named_parameters()}
        self.path.write_text(json.dumps({"sums": {n: p.sum().item() for n, p in params.items()},
                                         "abs": sum(p.abs().sum().item() for p in params.values()),
                                         "steps": state.global_step}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    model, data, out = sys.argv[1:4]
    cfg = recipe.load(None, ["train.max_steps=3", "train.batch_size=2", "train.lr=1e-3", "train.save_steps=100",
                             "train.logging_steps=1", "train.warmup_ratio=0", "train.precision=fp32"], model=model)
    rank = int(os.environ["RANK"])
    core.train(cfg, [data], Path(out), stage="pretrain", callbacks=[Digest(Path(out).parent / f"rank{rank}.json")])
