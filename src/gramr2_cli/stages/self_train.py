"""self-train: the iterative loop self-label → prove → filter → merge → pretrain. (not built yet)"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SelfTrainConfig:
    iterations: int = 3             # paper: 3
    init: str = "backbone"          # backbone | continue (paper: not stated)


def run(*args, **kwargs):
    from ..errors import NotBuiltError
    raise NotBuiltError("self-train: not built yet")
