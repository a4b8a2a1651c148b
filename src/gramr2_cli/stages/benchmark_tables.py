"""Markdown tables of the JudgeBench and RM-Bench numbers in `evaluate`'s report.md, one column per model, each
row saying which published table it matches (metrics.PUBLISHED)."""

from __future__ import annotations

from ..metrics import JUDGEBENCH_CATEGORIES, PUBLISHED, RMBENCH_DOMAINS


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _table(title: str, names: list[str], rows: list[tuple[str, list, str]]) -> list[str]:
    lines = ["", f"### {title}", "", "| number | " + " | ".join(names) + " | compare with |",
             "|---|" + "---|" * (len(names) + 1)]
    for label, values, where in rows:
        lines.append(f"| {label} | " + " | ".join(_pct(v) for v in values) + f" | {where} |")
    return lines


def judgebench_rows(per: list[dict]) -> list[tuple[str, list, str]]:
    """(label, value per model, published table) rows for JudgeBench (`per` = each model's numbers)."""
    cats = [c for _, c in JUDGEBENCH_CATEGORIES if any(c in m["categories"] for m in per)]
    rows = [("category mean (pooled per category)", [m["category_mean"] for m in per],
             PUBLISHED["judgebench.category_mean"]),
            ("position-consistent, all pairs", [m["position_consistent"] for m in per],
             PUBLISHED["judgebench.position_consistent"]),
            ("position-consistent, category mean", [m["position_consistent_category_mean"] for m in per],
             "ours (the unweighted mean of the row below)"),
            ("pooled accuracy, all pairs", [m["accuracy"] for m in per], PUBLISHED["accuracy"])]
    rows += [(f"{c}: pooled", [m["categories"].get(c) for m in per], "the categories the category mean averages")
             for c in cats]
    rows += [(f"{c}: position-consistent", [m["position_consistent_by_category"].get(c) for m in per],
              PUBLISHED["judgebench.position_consistent_by_category"]) for c in cats]
    rows.append(("order-inconsistent pairs", [m["order_inconsistent"] for m in per], "JudgeBench n_inconsistent"))
    return rows


def rmbench_rows(per: list[dict]) -> list[tuple[str, list, str]]:
    doms = [d for d in RMBENCH_DOMAINS if any(d in m["domains"] for m in per)]
    rows = [("domain mean (total average)", [m["domain_mean"] for m in per], PUBLISHED["rmbench.domain_mean"])]
    rows += [(d, [m["domains"].get(d, {}).get("mean") for m in per], PUBLISHED["rmbench.domains"]) for d in doms]
    rows += [(k, [m[k] for m in per], PUBLISHED["rmbench.easy_normal_hard"]) for k in ("easy", "normal", "hard")]
    return rows


def benchmark_md(models: dict[str, dict], dataset: str) -> list[str]:
    """The JudgeBench / RM-Bench tables of one dataset ([] when it has neither)."""
    names = list(models)
    bench = [models[n]["metrics"]["datasets"].get(dataset, {}).get("benchmarks", {}) for n in names]
    lines: list[str] = []
    if all("judgebench" in b for b in bench):
        lines += _table("JudgeBench (both orders needed for the position-consistent rows)", names,
                        judgebench_rows([b["judgebench"] for b in bench]))
    if all("rmbench" in b for b in bench):
        lines += _table("RM-Bench (3×3 style matrix per domain)", names, rmbench_rows([b["rmbench"] for b in bench]))
    return lines
