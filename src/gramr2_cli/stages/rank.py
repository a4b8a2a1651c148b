"""rank: pairwise verdicts (voting@k, both orders) and listwise best-of-n. (not built yet)"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RankConfig:
    votes: int = 1
    orders: str = "ab"              # ab | both
    method: str = "knockout"        # knockout | tournament | full


def run(*args, **kwargs):
    from ..errors import NotBuiltError
    raise NotBuiltError("rank: not built yet")
