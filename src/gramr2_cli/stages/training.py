"""Training stages (DESIGN §6): prover-train, pretrain, finetune, adapt — four uses of one trainer core.

| stage | objective | starts from | typical data |
|---|---|---|---|
| prover-train | `prover` (Eq. 4), fixed | the backbone | labeled pairs with rationales |
| pretrain | `reasoning` (Eq. 2); or `label` / `pairgen` baselines | backbone, or `train.init` | (self-)labeled pairs |
| finetune | `reasoning` or `label` | a reward model (`--model rm/`) | human-rationale pairs |
| adapt | `reasoning` or `label`, LoRA by default | a reward model | a small task set |

Each takes the resolved `Config` (never changed: a stage that fixes a value trains on a copy), the inputs and the
output, everything else by keyword, and returns the `Summary`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import GramrError
from ..core.shards import Summary
from ..train import core, objectives

if TYPE_CHECKING:
    from ..recipe import Config

ALLOWED = {
    "prover-train": ("prover",),
    "pretrain": ("reasoning", "label", "pairgen"),
    "finetune": ("reasoning", "label"),
    "adapt": ("reasoning", "label"),
}


def _check(stage: str, cfg: Config) -> None:
    objectives.get(cfg.train.objective)          # an unknown name lists every objective
    if cfg.train.objective not in ALLOWED[stage]:
        raise GramrError(f"{stage}: train.objective {cfg.train.objective!r} is not used here; "
                         f"choose from {', '.join(ALLOWED[stage])}")


def prover_train(cfg: Config, inputs: list[Path], output: Path, *, overwrite: bool = False,
                 resume: bool = False) -> Summary:
    """Train the preference-proving model π_ψ (Eq. 4) on labeled pairs with rationales (the objective is fixed
    to `prover` on a copy of `cfg`)."""
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, objective="prover"))
    return core.train(cfg, inputs, output, stage="prover-train", overwrite=overwrite, resume=resume)


def pretrain(cfg: Config, inputs: list[Path], output: Path, *, overwrite: bool = False,
             resume: bool = False) -> Summary:
    """Train the reward model: Eq. 2 reasoning SFT (GRAM-R²), or the `label` / `pairgen` (GRAM v1) baselines."""
    _check("pretrain", cfg)
    return core.train(cfg, inputs, output, stage="pretrain", overwrite=overwrite, resume=resume)


def finetune(cfg: Config, inputs: list[Path], output: Path, *, overwrite: bool = False,
             resume: bool = False) -> Summary:
    """Fine-tune a reward model (`cfg.model`) on pairs with human-written rationales."""
    _check("finetune", cfg)
    return core.train(cfg, inputs, output, stage="finetune", overwrite=overwrite, resume=resume)


def adapt(cfg: Config, inputs: list[Path], output: Path, *, overwrite: bool = False,
          resume: bool = False) -> Summary:
    """Adapt a reward model to a task with little data (the command turns LoRA on unless --no-lora)."""
    _check("adapt", cfg)
    return core.train(cfg, inputs, output, stage="adapt", overwrite=overwrite, resume=resume)


STAGES = {"prover-train": prover_train, "pretrain": pretrain, "finetune": finetune, "adapt": adapt}


def run(cfg: Config, inputs: list[Path], output: Path, *, stage: str, overwrite: bool = False,
        resume: bool = False) -> Summary:
    """Run training stage `stage` by name (the commands and the self-training loop call this)."""
    if stage not in STAGES:
        raise GramrError(f"unknown training stage {stage!r}; choose from {', '.join(STAGES)}")
    return STAGES[stage](cfg, inputs, output, overwrite=overwrite, resume=resume)
