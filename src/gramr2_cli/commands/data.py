"""`gramr2 data …`: synth, import, export, stats, merge, split."""

from __future__ import annotations

import typer

from .common import command, not_built

app = typer.Typer(help="Create, import, export, inspect, merge and split record shards.", no_args_is_help=True)


@command(app, "synth")
def synth_cmd() -> None:
    """Generate the synthetic verifiable preference task (gold labels and rationales)."""
    not_built("data synth")


@command(app, "import")
def import_cmd() -> None:
    """Import prompt/chosen/rejected, HelpSteer3, RewardBench, RM-Bench or JudgeBench data as pair shards."""
    not_built("data import")


@command(app, "export")
def export_cmd() -> None:
    """Export pairs for TRL/OpenRLHF (prompt/chosen/rejected) or LLaMA-Factory SFT (alpaca)."""
    not_built("data export")


@command(app, "stats")
def stats_cmd() -> None:
    """Counts, label balance, length percentiles and categories of a record set."""
    not_built("data stats")


@command(app, "merge")
def merge_cmd() -> None:
    """Join shard parts / record sets into one shard directory (by id, no duplicates)."""
    not_built("data merge")


@command(app, "split")
def split_cmd() -> None:
    """Split records into parts, seeded, by ratio or count."""
    not_built("data split")
