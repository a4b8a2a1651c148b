"""filter: keep self-labelled pairs that pass the paper's filtering step. (not built yet)"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FilterConfig:
    min_agreement: float = 0.75     # share of votes for the majority label (paper: not stated)
    min_confidence: float = 0.6     # answer-token probability (paper: not stated)
    max_rationale_tokens: int = 256
    balance_ab: bool = True


def run(*args, **kwargs):
    from ..errors import NotBuiltError
    raise NotBuiltError("filter: not built yet")
