"""Using a reward model: rank, evaluate, serve."""

from __future__ import annotations

import typer

from .common import command, not_built

rank_app = typer.Typer(help="Pairwise verdicts (voting@k, both orders) and listwise best-of-n.",
                       no_args_is_help=True)


@command(rank_app, "pairs")
def rank_pairs_cmd() -> None:
    """A verdict and P(A better) per pair; voting@k; both presentation orders."""
    not_built("rank pairs")


@command(rank_app, "list")
def rank_list_cmd() -> None:
    """Best-of-n over a prompt's candidates: knockout, tournament or full ranking."""
    not_built("rank list")


def register(app: typer.Typer) -> None:
    app.add_typer(rank_app, name="rank")

    @command(app, "evaluate")
    def evaluate_cmd() -> None:
        """Accuracy per category, parse rate, order consistency; report.md/json + PNG."""
        not_built("evaluate")

    @command(app, "serve")
    def serve_cmd() -> None:
        """HTTP reward server for RLHF (127.0.0.1:8000 by default)."""
        not_built("serve")
