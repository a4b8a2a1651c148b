"""Benchmark metrics for a pairwise judge, each named for what it is and for the published table it matches.

Pure functions over `PairOutcome`s (gold label, the judgment's label, the majority verdict of each presentation
order, the pair's group and RM-Bench style cell); `stages/evaluate.py` builds them from judged records.

- `accuracy`: pooled pair accuracy: pairs whose judgment label equals the gold label / pairs. A tie or an
  unparseable verdict counts as wrong. This is what `evaluate` always reported.
- `group_mean`: the unweighted mean of per-group accuracies (each group counts once, whatever its size).
  The GRAM-R² paper's RM-Bench and JudgeBench columns are means of this kind (issue 13: RM-Bench
  85.7 = (76.0 + 89.8 + 80.6 + 96.2) / 4 over chat/math/code/safety; JudgeBench 81.0 over its four categories).
- `position_consistent_accuracy`: JudgeBench's own score, `compute_final_metrics` in ScalerLab/JudgeBench
  `utils/metrics.py` (commit e2c52c2): each pair is judged in both orders; the decisions are counted
  +1 when equal to the gold label, −1 when equal to the opposite label, 0 otherwise (a tie or no verdict);
  the pair is right when the sum is > 0. So two right decisions, or one right and one tie/unparseable, score;
  an order-inconsistent pair (one A, one B) sums to 0 and counts as wrong. Pairs judged in one order only
  score by that decision alone (JudgeBench's `--single_game` branch).
- `rmbench`: RM-Bench's `compute_accuracy` (THU-KEG/RM-Bench `scripts/utils.py`, commit 73c52d7): per domain
  a 3×3 matrix over (chosen style i, rejected style j) of the share of prompts judged right; hard = mean of
  the upper-right cells (i < j), normal = the diagonal, easy = the lower-left cells; a domain's score = mean of
  its hard/normal/easy; the reported easy/normal/hard = unweighted means over the domains; the total
  (`domain_mean`) = unweighted mean of the domain scores. Domains are matched by prefix like RM-Bench's
  `split_dataset_by_domain` (`safety-refuse` and `safety-response` are both `safety`).

- Coverage: both official scorers need every category/domain (JudgeBench's category rows and RM-Bench's
  `split_dataset_by_domain` fail on an empty one; every RM-Bench prompt has all 9 style cells). `judgebench` and
  `rmbench` say `complete` and list what is `missing`; a mean over what is present is then partial, not the
  published number, and `evaluate` marks it so (table, JSON, PNG, warning).
- Order inconsistency counts decisions as JudgeBench does: "A>B", "B>A", a tie ("A=B") and no decision (None)
  are four different values, so a tie against a missing verdict is inconsistent, two ties or two missing are not.

`PUBLISHED` says which number goes next to which published table.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

# JudgeBench's run_judge.py scores per `source.startswith(prefix)`: the importer's (prefix, category) table;
# RM-Bench's domains and its prefix rule, also the importer's (it warns about records no scorer can use)
from ..core.formats.importers import (
    JUDGEBENCH_CATEGORIES,
    RMBENCH_DOMAINS,
    judgebench_category,
    rmbench_domain,
)
from .judge import gold_label

ONE_SIDED = 0.9          # gold labels this one-sided (either way) get a warning (ours; no paper value)

PUBLISHED = {
    "accuracy": "pooled pair accuracy (all pairs count once): RewardBench v1 per-subset accuracy; not a "
                "number the GRAM-R² paper reports for RM-Bench or JudgeBench",
    "judgebench.category_mean": "GRAM-R² paper, JudgeBench column: unweighted mean of knowledge, reasoning, math, "
                                "coding (the paper does not state whether both orders were judged)",
    "judgebench.position_consistent": "JudgeBench leaderboard and JudgeBench paper 'Overall': pooled over pairs, "
                                      "both orders, an inconsistent pair is wrong (run_judge.py)",
    "judgebench.position_consistent_by_category": "JudgeBench leaderboard per-category columns (same rule)",
    "rmbench.domain_mean": "GRAM-R² paper, RM-Bench column, and RM-Bench paper 'Avg': unweighted mean of "
                           "chat, math, code, safety",
    "rmbench.domains": "RM-Bench paper Chat / Math / Code / Safety columns (mean of each domain's 9 style cells)",
    "rmbench.easy_normal_hard": "RM-Bench paper Easy / Normal / Hard columns (unweighted mean over domains)",
}


@dataclass(frozen=True)
class PairOutcome:
    """One judged pair, all labels in the pair's original A/B orientation."""
    gold: str                                   # "A" | "B"
    label: str | None                           # the judgment's label (votes and orders combined)
    order_labels: tuple[str | None, ...] = ()   # majority verdict per order judged: (ab,) or (ab, ba)
    group: str | None = None                    # category / domain / JudgeBench category
    style: tuple[int, int] | None = None        # RM-Bench (chosen style, rejected style), 0 concise .. 2 markdown
    order_ties: tuple[bool, ...] = ()           # per order: no verdict because its votes tied (not unparseable)


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def accuracy(outs: list[PairOutcome]) -> float | None:
    """Pooled accuracy: label == gold over all pairs (None for no pairs)."""
    return _mean([float(o.label == o.gold) for o in outs])


def by_group(outs: list[PairOutcome]) -> dict[str, list[PairOutcome]]:
    groups: dict[str, list[PairOutcome]] = defaultdict(list)
    for o in outs:
        if o.group is not None:
            groups[o.group].append(o)
    return dict(sorted(groups.items()))


def group_mean(outs: list[PairOutcome], score=accuracy) -> tuple[float | None, dict[str, float]]:
    """(unweighted mean over groups of `score`, {group: score}); pairs without a group are left out."""
    per = {g: score(items) for g, items in by_group(outs).items()}
    return _mean(list(per.values())), per


# ---------------------------------------------------------------- JudgeBench

def flip(label: str | None) -> str | None:
    return {"A": "B", "B": "A"}.get(label) if label else None


def judgebench_vote(gold: str, decisions: tuple[str | None, ...]) -> int:
    """JudgeBench's `counter`: +1 per decision equal to gold, −1 per decision equal to the other label."""
    return sum(1 if d == gold else -1 if d == flip(gold) else 0 for d in decisions)


def position_consistent_accuracy(outs: list[PairOutcome]) -> float | None:
    """JudgeBench `compute_final_metrics`: share of pairs whose decisions (one per order) sum to > 0.
    None when a pair carries no per-order decisions (evaluate could not record them)."""
    if not outs or any(not o.order_labels for o in outs):
        return None
    return _mean([float(judgebench_vote(o.gold, o.order_labels) > 0) for o in outs])


def order_decisions(o: PairOutcome) -> tuple[str | None, ...]:
    """Each order's decision as JudgeBench compares them: "A", "B", "tie" (the order's votes tied) or None."""
    ties = o.order_ties or (False,) * len(o.order_labels)
    return tuple("tie" if lab is None and tie else lab for lab, tie in zip(o.order_labels, ties))


def order_inconsistent_rate(outs: list[PairOutcome]) -> float | None:
    """JudgeBench's `n_inconsistent / n_pairs` (`decision1 != decision2`), among pairs judged in both orders: a
    tie and a missing verdict are different decisions (`order_decisions`), two ties or two missing are equal."""
    both = [order_decisions(o) for o in outs if len(o.order_labels) == 2]
    return _mean([float(d[0] != d[1]) for d in both])


def judgebench(outs: list[PairOutcome]) -> dict[str, Any]:
    """Every JudgeBench number: pooled and position-consistent accuracy, each overall, per category and as the
    unweighted category mean. `group` must be the JudgeBench category."""
    cat_mean, per_cat = group_mean(outs)
    pc_mean, pc_per = group_mean(outs, position_consistent_accuracy)
    missing = [c for _, c in JUDGEBENCH_CATEGORIES if c not in per_cat]
    return {"n": len(outs), "accuracy": accuracy(outs), "category_mean": cat_mean, "categories": per_cat,
            "position_consistent": position_consistent_accuracy(outs),
            "position_consistent_category_mean": pc_mean, "position_consistent_by_category": pc_per,
            "order_inconsistent": order_inconsistent_rate(outs), "complete": not missing, "missing": missing}


# ---------------------------------------------------------------- RM-Bench

def style_matrix(outs: list[PairOutcome]) -> dict[tuple[int, int], float]:
    """{(i, j): share of the cell's pairs judged right} over the cells present."""
    cells: dict[tuple[int, int], list[float]] = defaultdict(list)
    for o in outs:
        if o.style is not None:
            cells[tuple(o.style)].append(float(o.label == o.gold))
    return {c: sum(v) / len(v) for c, v in sorted(cells.items())}


def difficulty_scores(matrix: dict[tuple[int, int], float]) -> dict[str, float | None]:
    """hard (i < j), normal (i == j), easy (i > j): the mean of the cells of each triangle present.
    With all 9 cells this is RM-Bench's np.triu(·, 1).sum() / 3, mean(diag), np.tril(·, -1).sum() / 3."""
    part = {"easy": [], "normal": [], "hard": []}
    for (i, j), acc in matrix.items():
        part["hard" if i < j else "normal" if i == j else "easy"].append(acc)
    return {k: _mean(v) for k, v in part.items()}


def rmbench(outs: list[PairOutcome]) -> dict[str, Any]:
    """RM-Bench's numbers from pairs with a style cell; `group` is the domain (`chat`, `safety-refuse`, …).
    Domain score = mean of its easy/normal/hard (RM-Bench's `domain_avg_results`)."""
    by_domain: dict[str, list[PairOutcome]] = defaultdict(list)
    for o in outs:
        d = rmbench_domain(o.group)
        if d is not None and o.style is not None:
            by_domain[d].append(o)
    domains = {}
    for d in RMBENCH_DOMAINS:
        if by_domain.get(d):
            diff = difficulty_scores(style_matrix(by_domain[d]))
            domains[d] = {"n": len(by_domain[d]), **diff,
                          "mean": _mean([v for v in diff.values() if v is not None])}
    missing = [d if d not in domains else f"{d} ({len(style_matrix(by_domain[d]))} of 9 style cells)"
               for d in RMBENCH_DOMAINS if d not in domains or len(style_matrix(by_domain[d])) < 9]
    out: dict[str, Any] = {"n": sum(v["n"] for v in domains.values()), "domains": domains,
                           "domain_mean": _mean([v["mean"] for v in domains.values()]),
                           "complete": not missing, "missing": missing}
    for k in ("easy", "normal", "hard"):
        out[k] = _mean([v[k] for v in domains.values() if v[k] is not None])
    return out


# ---------------------------------------------------------------- gold-label balance

def gold_balance(golds: list[str]) -> dict[str, Any]:
    """{gold_A_rate, one_sided}: one-sided when more than ONE_SIDED of the gold labels are the same letter, so
    a judge that always answers that letter would score as high (ours: a safety check, not a paper rule)."""
    n = len(golds)
    rate = sum(g == "A" for g in golds) / n if n else None
    return {"gold_A_rate": rate, "one_sided": rate is not None and max(rate, 1 - rate) > ONE_SIDED}


# ---------------------------------------------------------------- from judged records

def outcome(rec: dict, group: str | None = None) -> PairOutcome:
    """A judged record (gold by `judge.gold_label`, `meta.judgment`) as a PairOutcome; `group` defaults to
    `meta.category`. Raises KeyError for a record without `meta.judgment` (evaluate writes it on every record)."""
    meta = rec.get("meta") or {}
    j = meta["judgment"]
    gold = gold_label(rec)
    style = meta.get("style")
    style = tuple(style) if isinstance(style, list) and len(style) == 2 else None
    return PairOutcome(gold, j.get("label"), tuple(j.get("order_labels") or ()),
                       meta.get("category") if group is None else group, style,
                       tuple(r == "tie" for r in j.get("order_reasons") or ()))


def benchmarks(preds: list[dict]) -> dict[str, Any]:
    """The JudgeBench and RM-Bench numbers of the records that carry those benchmarks' fields:
    JudgeBench = `meta.subset` is a JudgeBench source (`mmlu-pro-…`, `livebench-…`, `livecodebench…`), grouped by
    its category; RM-Bench = a `meta.style` cell and an RM-Bench domain in `meta.category`. {} when neither."""
    out: dict[str, Any] = {}
    jb = [outcome(p, judgebench_category((p.get("meta") or {}).get("subset") or "")) for p in preds
          if judgebench_category((p.get("meta") or {}).get("subset") or "")]
    if jb:
        out["judgebench"] = judgebench(jb)
    rm = [o for o in (outcome(p) for p in preds) if o.style is not None and rmbench_domain(o.group)]
    if rm:
        out["rmbench"] = rmbench(rm)
    return out


def precision(recs: list[dict]) -> dict:
    """Share of labeled records whose label equals their gold label (`gold_label`), over records that have
    both."""
    pairs = [(r["label"], gold_label(r)) for r in recs
             if r.get("label") is not None and gold_label(r)]
    right = sum(a == b for a, b in pairs)
    return {"n": len(pairs), "correct": right, "precision": (right / len(pairs)) if pairs else None}
