"""rank: the recipe section of `rank pairs` / `rank list` and what both runs share (judge settings, provenance,
the config hash, pair metrics). The runs are `stages/rank_pairs.py` and `stages/rank_list.py`; the selection
algorithms of `rank list` are `selection.py`. This module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core import config
from . import judge
from .judge import ORDERS
from .selection import ALGORITHMS

if TYPE_CHECKING:
    from ..recipe import Config


@dataclass
class RankConfig:
    votes: int = 1                  # voting@k: samples per order; k > 1 samples at generate.temperature
    orders: str = "ab"              # ab | both (judge A/B and B/A, combine; ours, paper: not stated)
    method: str = "knockout"        # rank list: knockout | full (paper) | tournament | mergesort | round_robin
    tie_break: bool = True          # a voting tie goes to the side with the higher mean P(A better)
    batch_size: int = 32            # records per engine round (and per flush / progress step)
    keep_samples: bool = False      # keep every raw judge output in meta.judgment.samples

    def check(self) -> list[str]:
        """Problems of this section (keys relative to `rank`)."""
        return [*config.at_least("votes", self.votes, 1), *config.choice("orders", self.orders, ORDERS),
                *config.choice("method", self.method, ALGORITHMS), *config.at_least("batch_size", self.batch_size, 1)]


def settings(cfg: Config) -> judge.Settings:
    """The judge settings of `rank pairs` and `rank list` (rank.votes, rank.orders, rank.tie_break)."""
    rc = cfg.rank
    config.ensure(rc, "rank.")
    return judge.settings(cfg, "rank", votes=rc.votes, orders=rc.orders, tie_break=rc.tie_break)


def provenance(cfg: Config) -> dict:
    return {"model": cfg.model, "seed": cfg.seed, "prompt_version": cfg.prompt}


def resolved(cfg: Config) -> dict:
    """What a rank output's config hash covers."""
    return config.sections(cfg, "model", "prompt", "seed", "generate", "rank")


def pair_metrics(js: list[judge.Judgment], gold: list[str | None]) -> dict[str, Any]:
    """Parse rate, label counts, ties, order disagreement, truncation counts (`judge.tally`) and (where gold
    labels exist) accuracy."""
    samples = sum(sum(j.votes.values()) for j in js)
    decided = [j.order_consistent for j in js if j.order_consistent is not None]
    m: dict[str, Any] = {
        "pairs": len(js),
        "parse_rate": (sum(j.parse_ok for j in js) / samples) if samples else None,
        "label_A": sum(j.label == "A" for j in js), "label_B": sum(j.label == "B" for j in js),
        "no_label": sum(j.label is None for j in js), "tie_broken": sum(j.tie_broken for j in js),
        **judge.tally(js),
    }
    if decided:
        m["order_disagreement"] = sum(not c for c in decided) / len(decided)
        m["order_pairs_compared"] = len(decided)
    scored = [(j.label, g) for j, g in zip(js, gold) if g is not None]
    if scored:
        m["accuracy"] = sum(lab == g for lab, g in scored) / len(scored)
        m["gold_pairs"] = len(scored)
    return m
