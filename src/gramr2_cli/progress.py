"""The one progress-bar style of the record-writing stages: rich, on stderr (stdout carries data)."""

from __future__ import annotations


def progress_bar(enabled: bool):
    """A rich `Progress` on stderr; a no-op when not `enabled` (add tasks with `add_task(description, total=…)`)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled)
