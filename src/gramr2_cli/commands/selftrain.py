"""Self-training data path: prove, self-label, filter, self-train."""

from __future__ import annotations

import typer

from .common import command, not_built


def register(app: typer.Typer) -> None:
    @command(app, "prove")
    def prove_cmd() -> None:
        """Sample k proofs per labeled pair, keep the best by Eq. 5, reform it into a rationale."""
        not_built("prove")

    @command(app, "self-label")
    def self_label_cmd() -> None:
        """Judge unlabeled pairs with the reward model: votes, majority label, confidence."""
        not_built("self-label")

    @command(app, "filter")
    def filter_cmd() -> None:
        """Keep confident, consistent self-labelled pairs; write the rest with reasons."""
        not_built("filter")

    @command(app, "self-train")
    def self_train_cmd() -> None:
        """Run the self-training loop (self-label → prove → filter → merge → pretrain) from one recipe."""
        not_built("self-train")
