"""Training commands: prover-train, pretrain, finetune, adapt (one trainer core, DESIGN §5)."""

from __future__ import annotations

import typer

from .common import command, not_built


def register(app: typer.Typer) -> None:
    @command(app, "prover-train")
    def prover_train_cmd() -> None:
        """Train the preference-proving model π_ψ on labeled pairs with rationales (Eq. 4)."""
        not_built("prover-train")

    @command(app, "pretrain")
    def pretrain_cmd() -> None:
        """Train the reward model (initial GRAM-R², Eq. 2; or the label / pairgen baselines)."""
        not_built("pretrain")

    @command(app, "finetune")
    def finetune_cmd() -> None:
        """Fine-tune a reward model on human-written rationales (HelpSteer3-style)."""
        not_built("finetune")

    @command(app, "adapt")
    def adapt_cmd() -> None:
        """Adapt a reward model to a task with little data (LoRA by default)."""
        not_built("adapt")
