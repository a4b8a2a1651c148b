"""Markdown tables of the JudgeBench and RM-Bench numbers in `evaluate`'s report.md, one column per model, each
row saying which published table it matches (metrics.PUBLISHED), and the benchmark rows that head a dataset's
main table. A benchmark whose input lacks a category/domain (or RM-Bench style cells) is marked partial on every
row that averages over them: those means are not the published numbers (the official scorers refuse such input)."""

from __future__ import annotations

from ..judging.metrics import JUDGEBENCH_CATEGORIES, PUBLISHED, RMBENCH_DOMAINS

NAMES = {"judgebench": "JudgeBench", "rmbench": "RM-Bench"}


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def partial_note(bench: str, numbers: list[dict]) -> str:
    """'' when every model's `bench` numbers are complete, else ' (partial: no …)'."""
    missing = list(dict.fromkeys(m for n in numbers for m in n.get("missing", [])))   # the benchmark's order
    return f" (partial: no {', '.join(missing)})" if missing else ""


def partial_warning(dataset: str, bench: str, numbers: dict) -> str | None:
    """The warning line for one model's incomplete benchmark numbers, or None when complete."""
    if numbers.get("complete", True):
        return None
    what = "categories" if bench == "judgebench" else "domains"
    return (f"warning: {dataset}: partial {NAMES[bench]} input (no {', '.join(numbers['missing'])}): its means are "
            f"over the {what} present, not the published {NAMES[bench]} numbers (the official scorer needs all)")


def _table(title: str, names: list[str], rows: list[tuple[str, list, str]]) -> list[str]:
    lines = ["", f"### {title}", "", "| number | " + " | ".join(names) + " | compare with |",
             "|---|" + "---|" * (len(names) + 1)]
    for label, values, where in rows:
        lines.append(f"| {label} | " + " | ".join(_pct(v) for v in values) + f" | {where} |")
    return lines


def judgebench_rows(per: list[dict]) -> list[tuple[str, list, str]]:
    """(label, value per model, published table) rows for JudgeBench (`per` = each model's numbers)."""
    cats = [c for _, c in JUDGEBENCH_CATEGORIES if any(c in m["categories"] for m in per)]
    p = " (partial)" if partial_note("judgebench", per) else ""
    rows = [(f"category mean (pooled per category){p}", [m["category_mean"] for m in per],
             PUBLISHED["judgebench.category_mean"]),
            (f"position-consistent, all pairs{p}", [m["position_consistent"] for m in per],
             PUBLISHED["judgebench.position_consistent"]),
            (f"position-consistent, category mean{p}", [m["position_consistent_category_mean"] for m in per],
             "ours (the unweighted mean of the row below)"),
            (f"pooled accuracy, all pairs{p}", [m["accuracy"] for m in per], PUBLISHED["accuracy"])]
    rows += [(f"{c}: pooled", [m["categories"].get(c) for m in per], "the categories the category mean averages")
             for c in cats]
    rows += [(f"{c}: position-consistent", [m["position_consistent_by_category"].get(c) for m in per],
              PUBLISHED["judgebench.position_consistent_by_category"]) for c in cats]
    rows.append(("order-inconsistent pairs", [m["order_inconsistent"] for m in per],
                 "JudgeBench n_inconsistent (a tie and a missing verdict differ)"))
    return rows


def rmbench_rows(per: list[dict]) -> list[tuple[str, list, str]]:
    doms = [d for d in RMBENCH_DOMAINS if any(d in m["domains"] for m in per)]
    p = " (partial)" if partial_note("rmbench", per) else ""
    rows = [(f"domain mean (total average){p}", [m["domain_mean"] for m in per], PUBLISHED["rmbench.domain_mean"])]
    rows += [(d, [m["domains"].get(d, {}).get("mean") for m in per], PUBLISHED["rmbench.domains"]) for d in doms]
    rows += [(f"{k}{p}", [m[k] for m in per], PUBLISHED["rmbench.easy_normal_hard"]) for k in ("easy", "normal", "hard")]
    return rows


def main_rows(bench: list[dict]) -> list[tuple[str, int, list]]:
    """The benchmark's own numbers that head a dataset's main table: (label, pairs, value per model); `bench` =
    each model's `benchmarks` of the dataset. RM-Bench: domain mean and easy/normal/hard averaged per domain
    first, as RM-Bench does; JudgeBench: the leaderboard's position-consistent score and the category mean."""
    rows: list[tuple[str, int, list]] = []
    if bench and all("rmbench" in b for b in bench):
        per = [b["rmbench"] for b in bench]
        p = partial_note("rmbench", per)
        rows.append((f"RM-Bench domain mean{p}", per[0]["n"], [m["domain_mean"] for m in per]))
        rows += [(f"RM-Bench {k} (mean over domains){p}", per[0]["n"], [m[k] for m in per])
                 for k in ("easy", "normal", "hard")]
    if bench and all("judgebench" in b for b in bench):
        per = [b["judgebench"] for b in bench]
        p = partial_note("judgebench", per)
        if any(m["position_consistent"] is not None for m in per):
            rows.append((f"JudgeBench position-consistent{p}", per[0]["n"], [m["position_consistent"] for m in per]))
        rows.append((f"JudgeBench category mean{p}", per[0]["n"], [m["category_mean"] for m in per]))
    return rows


def benchmark_md(models: dict[str, dict], dataset: str) -> list[str]:
    """The JudgeBench / RM-Bench tables of one dataset ([] when it has neither)."""
    names = list(models)
    bench = [models[n]["metrics"]["datasets"].get(dataset, {}).get("benchmarks", {}) for n in names]
    lines: list[str] = []
    if all("judgebench" in b for b in bench):
        per = [b["judgebench"] for b in bench]
        lines += _table("JudgeBench (both orders needed for the position-consistent rows)"
                        + partial_note("judgebench", per), names, judgebench_rows(per))
    if all("rmbench" in b for b in bench):
        per = [b["rmbench"] for b in bench]
        lines += _table("RM-Bench (3×3 style matrix per domain)" + partial_note("rmbench", per), names,
                        rmbench_rows(per))
    return lines
