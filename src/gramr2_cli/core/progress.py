"""The one progress-bar style of the record-writing stages: rich, on stderr (stdout carries data)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


def _progress(enabled: bool):
    """A rich `Progress` on stderr; a no-op when not `enabled`."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled)


@contextmanager
def bar(enabled: bool, total: int, desc: str) -> Iterator[Callable[[int], None]]:
    """One task of `total` steps: `with bar(on, n, "rank pairs") as advance: … advance(1)`."""
    with _progress(enabled) as p:
        task = p.add_task(desc, total=total)
        yield lambda k=1: p.advance(task, k)
