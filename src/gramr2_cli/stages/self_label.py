"""self-label: the reward model judges unlabeled pairs (votes, majority, confidence). (not built yet)"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SelfLabelConfig:
    samples: int = 4                # paper: vote count not stated
    orders: str = "ab"              # ab | both


def run(*args, **kwargs):
    from ..errors import NotBuiltError
    raise NotBuiltError("self-label: not built yet")
