"""evaluate: benchmark accuracy of one or more reward models, side by side.

Reads gold-labeled pairs (`judge.gold_label`: `meta.gold_label`, else a `label` that is not a self-label
pseudo-label; other pairs are skipped and counted),
judges them with each model (`evaluate.votes` samples per order, `evaluate.orders`), and writes

    OUTPUT/predictions/<model>/   a resumable shard per model: the records with `meta.judgment`
    OUTPUT/report.json            every number below, per model
    OUTPUT/report.md              the same as tables
    OUTPUT/accuracy.png           per-category accuracy bars, one colour per model

Accuracy counts a pair right when the judgment's label equals the gold label; a tie or an unparseable reply
counts as wrong (`accuracy_decided` leaves them out). Groups: overall, per dataset (`source`), and per
`meta.section` (RewardBench), `meta.category`, `meta.difficulty` (RM-Bench easy/normal/hard, written by
`formats.import_rmbench`) within a dataset. Parse rate = parsed samples / samples; order consistency (with
`--orders both`) = share of pairs whose two orders' majority verdicts agree, among pairs where both parsed.
A dataset with JudgeBench or RM-Bench records heads its table with the benchmark's own numbers
(`benchmark_tables.main_rows`: RM-Bench's easy/normal/hard averaged per domain first); the plain accuracies
below them are labelled pooled. Input that lacks a benchmark category/domain is marked partial in report.md,
report.json (`complete`, `missing`), accuracy.png and a warning.
A pair whose response carries template tokens or verdict tags gets `meta.flags` (`flags.record_flags`) in its
predictions; the summary counts them (`flagged_pairs`).
Samples without a verdict are split into `truncated` (cut off at `generate.max_new_tokens`) and `unparseable`
(finished without one); `responses_truncated` counts responses trimmed to fit the context (`generate.truncate`).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import runner
from ..core import config, flags, outdir, readers, shards
from ..core.errors import GramrError
from ..engines import note
from ..judging import judge
from ..judging.metrics import PUBLISHED, benchmarks, gold_balance
from ..reports import plots
from ..reports.benchmark_tables import benchmark_md, main_rows, partial_note, partial_warning
from . import evaluate_lists

if TYPE_CHECKING:
    from ..recipe import Config

GROUP_FIELDS = ("section", "category", "difficulty")   # meta fields reported per dataset, in this order


@dataclass
class EvaluateConfig:
    votes: int = 1                  # voting@k (k > 1 samples at generate.temperature)
    orders: str = "ab"              # ab | both (adds order consistency)
    tie_break: bool = True          # a voting tie goes to the higher mean P(A better)
    batch_size: int = 32            # pairs per engine call / flush
    keep_samples: bool = False      # keep raw judge outputs in the predictions
    plot: bool = True               # write accuracy.png
    list_method: str = "round_robin"  # best-of-n lists (RewardBench 2): round_robin | knockout (Ties: round_robin)

    def check(self) -> list[str]:
        """Problems of this section (keys relative to `evaluate`)."""
        return [*config.at_least("votes", self.votes, 1), *config.choice("orders", self.orders, judge.ORDERS),
                *config.at_least("batch_size", self.batch_size, 1),
                *config.choice("list_method", self.list_method, evaluate_lists.LIST_METHODS)]


# ---------------------------------------------------------------- metrics (pure)

def _cell(preds: list[dict]) -> dict[str, Any]:
    gold = judge.gold_label
    n = len(preds)
    js = [p["meta"]["judgment"] for p in preds]
    right = sum(j["label"] == gold(p) for j, p in zip(js, preds))
    decided = [(j, p) for j, p in zip(js, preds) if j["label"] is not None]
    samples = sum(sum(j["votes"].values()) for j in js)
    both = [j["order_consistent"] for j in js if j.get("order_consistent") is not None]
    return {
        "n": n, "correct": right, "accuracy": right / n if n else None,
        "accuracy_decided": (sum(j["label"] == gold(p) for j, p in decided) / len(decided)) if decided else None,
        "no_label": n - len(decided),
        "parse_rate": (sum(j["parse_ok"] for j in js) / samples) if samples else None,
        "order_consistency": (sum(both) / len(both)) if both else None,
        "pred_A_rate": (sum(j["label"] == "A" for j, _ in decided) / len(decided)) if decided else None,
        "gold_A_rate": sum(gold(p) == "A" for p in preds) / n if n else None,
        **judge.tally(js),
    }


def metrics(preds: list[dict]) -> dict[str, Any]:
    """{overall, datasets: {source: {overall, gold_balance, benchmarks?, <field>: {value: cell}}}} from judged,
    gold-labeled records; `benchmarks` holds the JudgeBench / RM-Bench numbers (metrics.benchmarks)."""
    by_ds: dict[str, list[dict]] = defaultdict(list)
    for p in preds:
        by_ds[p.get("source") or "data"].append(p)
    out: dict[str, Any] = {"overall": _cell(preds), "datasets": {}}
    for ds, items in sorted(by_ds.items()):
        d: dict[str, Any] = {"overall": _cell(items), "gold_balance": gold_balance([judge.gold_label(p) for p in items])}
        bench = benchmarks(items)
        if bench:
            d["benchmarks"] = bench
        for f in GROUP_FIELDS:
            groups: dict[str, list[dict]] = defaultdict(list)
            for p in items:
                v = (p.get("meta") or {}).get(f)
                if v is not None and not isinstance(v, (dict, list)):
                    groups[str(v)].append(p)
            if groups:
                d[f] = {k: _cell(v) for k, v in sorted(groups.items())}
        out["datasets"][ds] = d
    return out


def category_rows(m: dict) -> list[tuple[str, dict]]:
    """(name, cell) per bar of the chart: each dataset's categories (or the dataset when it has none), then its
    easy/normal/hard: RM-Bench's own (averaged per domain, `partial` in the name when domains are missing) where
    the dataset is RM-Bench, else the pooled difficulty groups, named pooled."""
    rows = []
    for ds, d in m["datasets"].items():
        if "category" in d:
            rows += [(f"{ds}/{k}", c) for k, c in d["category"].items()]
        else:
            rows.append((ds, d["overall"]))
        rm = d.get("benchmarks", {}).get("rmbench")
        if rm:
            p = " (partial)" if partial_note("rmbench", [rm]) else ""
            rows += [(f"{ds}/RM-Bench {k}{p}", {"accuracy": rm[k]}) for k in ("easy", "normal", "hard")]
        elif "difficulty" in d:
            rows += [(f"{ds}/{k} (pooled)", d["difficulty"][k]) for k in ("easy", "normal", "hard")
                     if k in d["difficulty"]]
    return rows


# ---------------------------------------------------------------- report writers

def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def report_md(models: dict[str, dict], cfg: dict) -> str:
    names = list(models)
    lines = ["# gramr2 evaluate", "",
             (f"votes {cfg['votes']}, orders {cfg['orders']}, prompt {cfg['prompt']}, seed {cfg['seed']}. "
              "Accuracy in %; a tie or an unparseable verdict counts as wrong."), "",
             *[f"**{w}**\n" for w in cfg.get("warnings", [])],
             "## Overall", "", ("| model | spec | pairs | accuracy | decided acc. | parse rate | order consistency "
                                "| pred A rate | truncated | unparseable | responses trimmed |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in names:
        o = models[n]["metrics"]["overall"]
        lines.append(f"| {n} | `{models[n]['spec']}` | {o['n']} | {_pct(o['accuracy'])} | "
                     f"{_pct(o['accuracy_decided'])} | {_pct(o['parse_rate'])} | {_pct(o['order_consistency'])} | "
                     f"{_pct(o['pred_A_rate'])} | {o['truncated']} | {o['unparseable']} | "
                     f"{o['responses_truncated']} |")
    datasets = sorted({ds for n in names for ds in models[n]["metrics"]["datasets"]})
    for ds in datasets:
        lines += ["", f"## {ds}", "", "| group | pairs | " + " | ".join(names) + " |",
                  "|---|---|" + "---|" * len(names)]
        per = [models[n]["metrics"]["datasets"].get(ds, {}) for n in names]
        bench = [d.get("benchmarks", {}) for d in per]
        heads = main_rows(bench)
        for label, n_pairs, values in heads:
            lines.append(f"| **{label}** | {n_pairs} | " + " | ".join(_pct(v) for v in values) + " |")
        rm = bool(bench) and all("rmbench" in b for b in bench)
        rows = [("overall", "overall")] + [(f, k) for f in GROUP_FIELDS
                                           for k in sorted({k for d in per for k in d.get(f, {})})]
        for f, k in rows:
            cells = [(d.get(f, {}).get(k) if f != "overall" else d.get("overall")) for d in per]
            n_pairs = next((c["n"] for c in cells if c), 0)
            label = "overall" if f == "overall" else f"{f}: {k}"
            if heads and f == "overall":
                label = "overall (pooled)"
            elif rm and f == "difficulty":
                label += " (pooled over domains)"
            lines.append(f"| {label} | {n_pairs} | " + " | ".join(_pct(c and c["accuracy"]) for c in cells) + " |")
        lines += benchmark_md(models, ds)
    return "\n".join(lines) + "\n"


def plot(models: dict[str, dict], path: Path) -> None:
    """Grouped bar chart of per-category accuracy."""
    names = list(models)
    labels = list(dict.fromkeys(k for n in names for k, _ in category_rows(models[n]["metrics"])))
    series = {}
    for n in names:
        acc = {k: c["accuracy"] for k, c in category_rows(models[n]["metrics"])}
        series[n] = [100 * (acc.get(k) or 0.0) for k in labels]
    partial = sorted({f"{ds} {b}" for n in names for ds, d in models[n]["metrics"]["datasets"].items()
                      for b, v in d.get("benchmarks", {}).items() if not v.get("complete", True)})
    title = "Pairwise accuracy per category" + (f" (partial: {', '.join(partial)})" if partial else "")
    plots.grouped_bars(path, labels, series, ylabel="accuracy (%)", title=title, chance=50, rotate=True)


# ---------------------------------------------------------------- run

def _judged(rec: dict, j: judge.Judgment, keep_samples: bool) -> dict:
    """A prediction: `rec` with `meta.judgment` and, for a response with template tokens or verdict tags,
    `meta.flags`."""
    meta = dict(rec["meta"], judgment=j.to_meta(keep_samples=keep_samples))
    found = flags.record_flags(rec)
    if found:
        meta["flags"] = found
    return dict(rec, meta=meta)


def one_sided_warnings(m: dict) -> list[str]:
    """One line per dataset whose gold labels are one-sided (metrics.gold_balance): a judge that always answers
    the majority letter would score that high, so its accuracy says little."""
    out = []
    for ds, d in m["datasets"].items():
        g = d["gold_balance"]
        if g["one_sided"]:
            top, rate = ("A", g["gold_A_rate"]) if g["gold_A_rate"] >= 0.5 else ("B", 1 - g["gold_A_rate"])
            out.append(f"warning: {ds}: {100 * rate:.0f}% of the gold labels are {top}; a judge that always answers "
                       f"{top} scores {100 * rate:.0f}% here (re-import with 'data import --order random', and "
                       f"evaluate with --orders both)")
    return out


def partial_warnings(m: dict) -> list[str]:
    """One line per dataset whose JudgeBench / RM-Bench input lacks a category or domain (metrics: `complete`)."""
    return [w for ds, d in m["datasets"].items() for b, v in sorted(d.get("benchmarks", {}).items())
            if (w := partial_warning(ds, b, v))]


def summary_numbers(report: dict[str, dict]) -> dict[str, Any]:
    """The summary's numbers per model: accuracy, parse rate, order consistency, and the benchmark scores
    (JudgeBench pooled / category mean / position-consistent; RM-Bench domain mean and easy/normal/hard)."""
    out: dict[str, Any] = {}
    for name, r in report.items():
        o = r["metrics"]["overall"]
        out[f"{name}: accuracy"] = o["accuracy"]
        out[f"{name}: parse_rate"] = o["parse_rate"]
        if o["order_consistency"] is not None:
            out[f"{name}: order_consistency"] = o["order_consistency"]
        for key in ("truncated", "responses_truncated"):
            if o[key]:
                out[f"{name}: {key}"] = o[key]
        for ds, d in r["metrics"]["datasets"].items():
            jb, rm = d.get("benchmarks", {}).get("judgebench"), d.get("benchmarks", {}).get("rmbench")
            if jb:
                out[f"{name}: {ds} judgebench category_mean"] = jb["category_mean"]
                out[f"{name}: {ds} judgebench position_consistent"] = jb["position_consistent"]
                out[f"{name}: {ds} judgebench complete"] = jb["complete"]
            if rm:
                for k in ("domain_mean", "easy", "normal", "hard"):
                    out[f"{name}: {ds} rmbench {k}"] = rm[k]
                out[f"{name}: {ds} rmbench complete"] = rm["complete"]
    return out


def _gold_pairs(inputs: list[Path]) -> tuple[list[dict], Counter]:
    """The records of `inputs` that carry a gold label, and skip counts (`no_gold_label`, read skips).
    Raises GramrError when none has one."""
    skipped: Counter = Counter()
    recs = []
    for r in readers.read(inputs, skipped=skipped):
        if judge.gold_label(r) is None:
            skipped["no_gold_label"] += 1
        else:
            recs.append(r)
    if not recs:
        raise GramrError(f"no gold-labeled pairs in {', '.join(map(str, inputs))}",
                         hint="evaluate needs 'label' (or meta.gold_label); import benchmarks with "
                              "'gramr2 data import --format rewardbench|rmbench|judgebench|helpsteer3'")
    return recs, skipped


def _write_report(cfg: Config, inputs: list[Path], output: Path, report: dict[str, dict], pairs: int,
                  skipped: Counter, warnings: list[str]) -> list[str]:
    """Write report.json, report.md and (evaluate.plot) accuracy.png into `output`; returns their paths."""
    ec = cfg.evaluate
    meta = {"votes": ec.votes, "orders": ec.orders, "prompt": cfg.prompt, "seed": cfg.seed,
            "inputs": [str(i) for i in inputs], "pairs": pairs, "skipped": dict(skipped), "warnings": warnings,
            "published": PUBLISHED}
    return outdir.write_report(output, meta, report, report_md(report, meta),
                               ("accuracy.png", plot) if ec.plot else None)


def run(cfg: Config, inputs: list[Path], output: Path, *, models: list[str] | None = None,
        engines: dict | None = None, overwrite: bool = False, progress: bool = True) -> shards.Summary:
    """Evaluate each model in `models` (default: cfg.model) on the gold-labeled pairs of `inputs`.

    `engines` maps a model spec to an already-loaded engine (tests, notebooks); other specs are loaded one at a
    time and closed after. Raises GramrError when no input pair has a gold label."""
    import time
    t0 = time.time()
    config.ensure(cfg.evaluate, "evaluate.")
    specs, slugs = runner.models(cfg, models, engines, output, "evaluate")
    lists = [evaluate_lists.is_list_source(s) for s in readers.source_files(inputs)]
    if any(lists):
        if not all(lists):
            raise GramrError("evaluate reads pair records or best-of-n lists (RewardBench 2), not both in one run",
                             hint="run evaluate once per kind of input")
        return evaluate_lists.run(cfg, inputs, runner.report_dir(output), specs=specs, slugs=slugs,
                                  engines=engines or {}, overwrite=overwrite, progress=progress)
    recs, skipped = _gold_pairs(inputs)
    output = runner.report_dir(output)
    ec = cfg.evaluate
    how = judge.settings(cfg, "evaluate", votes=ec.votes, orders=ec.orders, tie_break=ec.tie_break)
    report: dict[str, dict] = {}
    counts: Counter = Counter()
    want = {r["id"] for r in recs}
    for spec, name, pred_dir, stats in runner.each_model(
            cfg, specs, slugs, output, recs, stage="evaluate", section="evaluate", inputs=inputs, work=how.judge,
            handle=lambda rec, j: _judged(rec, j, ec.keep_samples), batch_size=ec.batch_size, given=engines,
            overwrite=overwrite, progress_on=progress):
        preds = [p for p in readers.read([pred_dir]) if p["id"] in want]
        report[name] = {"spec": spec, "predictions": str(pred_dir), "metrics": metrics(preds)}
        counts.update({"pairs_judged": stats["judged"], "pairs_resumed": stats["resumed"]})
    first = next(iter(report.values()))["metrics"]
    warnings = one_sided_warnings(first) + partial_warnings(first)
    for w in warnings:
        note(w)
    outs = _write_report(cfg, inputs, output, report, len(recs), skipped, warnings)
    summary_metrics = summary_numbers(report)
    if warnings:
        summary_metrics["warnings"] = warnings
    counts["flagged_pairs"] = sum(bool(flags.record_flags(r)) for r in recs)
    summary = shards.Summary("evaluate", {"pairs": len(recs), **counts}, dict(skipped), time.time() - t0, outs,
                             summary_metrics)
    outdir.atomic_write(output / "summary.json", json.dumps(summary.to_dict(), indent=2))
    return summary
