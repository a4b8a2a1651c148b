"""prove: sample k proofs per labeled pair and keep the best by Eq. 5. (not built yet)"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ProveConfig:
    k: int = 4                      # paper: k not stated
    temperature: float = 0.8        # paper: not stated
    max_new_tokens: int = 160
    keep_candidates: bool = False


def run(*args, **kwargs):
    from ..errors import NotBuiltError
    raise NotBuiltError("prove: not built yet")
