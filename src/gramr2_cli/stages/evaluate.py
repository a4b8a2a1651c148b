"""evaluate: accuracy per category, parse rate, order consistency, report. (not built yet)"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EvaluateConfig:
    votes: int = 1
    orders: str = "ab"


def run(*args, **kwargs):
    from ..errors import NotBuiltError
    raise NotBuiltError("evaluate: not built yet")
