"""evaluate on best-of-n lists (RewardBench 2) with a pairwise A/B judge.

`gramr2 evaluate` comes here when its inputs are RewardBench 2 rows (`chosen`/`rejected` lists with
`num_correct` and `subset`; JSONL, JSON or Parquet as released) or list records written by this stage
({prompt, candidates, meta.correct, meta.chosen_index}). Rows become list records with the candidates shuffled by
a hash of (seed, row id) (`rewardbench2.list_record`).

Selection, with `selection.py`'s algorithms and `evaluate.orders` / `evaluate.votes` per comparison:
- best-of-4 subsets: `evaluate.list_method` = `round_robin` (every pair; a candidate's score = its win rate,
  P = 0.5 counting half) or `knockout` (the paper's linear search; the winner scores 1, the others 0). The row
  result is the official one on those scores: 1 / #(candidates at the max) when the chosen answer is at the max.
- Ties: always round-robin, a candidate's score = its mean P(better) over its comparisons (continuous, so the
  official margin terms have meaning), scored by `rewardbench2.ties_score`.
These adapters are ours: RewardBench 2's own generative path asks a judge for a 4-way pick or a 1–10 rating.

Writes OUTPUT/predictions/<model>/ (resumable; each record with `meta.rb2`: method, comparisons, scores, result),
OUTPUT/report.json, OUTPUT/report.md and summary.json.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import runner
from ..core import outdir, readers, shards
from ..core.errors import GramrError
from ..core.records import normalize_list
from ..engines import note
from ..judging import judge
from ..judging import rewardbench2 as rb2
from ..judging.selection import Selection, candidate_compare, drive

if TYPE_CHECKING:
    from ..recipe import Config

LIST_METHODS = ("round_robin", "knockout")


def is_list_source(src: Path | str) -> bool:
    """Whether a source's first object is a RewardBench 2 row or a list record (prompt + candidates).
    stdin (`-`) is not peeked (it could not be read again): it is read as pairs."""
    if str(src) == "-":
        return False
    for _, obj in readers.read_raw(src):
        return rb2.is_row(obj) or (isinstance(obj, dict) and "candidates" in obj)
    return False


def read_lists(inputs: list, seed: int, skipped: Counter) -> list[dict]:
    """List records from RewardBench 2 rows or list records; repeated ids are skipped (`duplicate_id`).
    Raises GramrError for a list record without `meta.correct`/`meta.chosen_index` (nothing to score)."""
    out, seen = [], set()
    for src in readers.source_files(inputs):
        for where, obj in readers.read_raw(src):
            rec = rb2.list_record(obj, where, seed) if rb2.is_row(obj) else normalize_list(obj, where)
            m = rec["meta"]
            if not isinstance(m.get("correct"), list) or not isinstance(m.get("chosen_index"), int):
                raise GramrError(f"{where}: a list record needs meta.correct and meta.chosen_index to be scored",
                                 hint="evaluate RewardBench 2 rows as released (chosen/rejected/num_correct)")
            if rec["id"] in seen:
                skipped["duplicate_id"] += 1
                continue
            seen.add(rec["id"])
            out.append(rec)
    return out


def method_for(rec: dict, method: str) -> str:
    return "round_robin" if rec["meta"].get("subset") == rb2.TIES else method


def scored(rec: dict, method: str, sel: Selection) -> dict:
    """`meta.rb2` for one record: candidate scores from the selection, and the official row result."""
    n, ties = len(rec["candidates"]), rec["meta"].get("subset") == rb2.TIES
    if method == "knockout":
        scores = [1.0 if k == sel.winner else 0.0 for k in range(n)]
    else:
        scores = rb2.candidate_scores(n, sel.comparisons, "mean_p" if ties else "win_rate")
    # not rounded: the Ties rule compares scores (worst correct vs best incorrect), and a rounded 0.5000001 vs
    # 0.4999999 would become a tie and flip the row (issue 23); JSON keeps a float exactly
    return {"method": method, "winner": sel.winner, "scores": list(scores),
            "comparisons": [[i, j, p] for i, j, p in sel.comparisons],
            "result": None if ties else rb2.best_of_n_result(scores, rec["meta"]["chosen_index"])}


def list_metrics(preds: list[dict]) -> dict[str, Any]:
    """Per-subset scores by the official rules (mean row result; Ties by `ties_score`) and the overall score."""
    by_subset: dict[str, list[dict]] = defaultdict(list)
    for p in preds:
        by_subset[str(p["meta"].get("subset"))].append(p)
    subsets: dict[str, Any] = {}
    for name, items in sorted(by_subset.items()):
        if name == rb2.TIES:
            rows = [(p["meta"]["source_id"], [(k in p["meta"]["correct"], s)
                                              for k, s in enumerate(p["meta"]["rb2"]["scores"])]) for p in items]
            subsets[name] = {"n": len(items), **rb2.ties_score(rows)}
        else:
            results = [p["meta"]["rb2"]["result"] for p in items]
            subsets[name] = {"n": len(items), "score": sum(results) / len(results),
                             "chosen_won": sum(p["meta"]["rb2"]["winner"] in p["meta"]["correct"] for p in items)}
    return {"subsets": subsets, "overall": rb2.overall({k: v["score"] for k, v in subsets.items()})}


def partial_warning(m: dict) -> str | None:
    """A warning line when the RewardBench 2 input lacks subsets (the overall is then not the leaderboard's)."""
    o = m["overall"]
    if o["complete"]:
        return None
    missing = [s for s in rb2.SUBSETS if m["subsets"].get(s, {}).get("score") is None]
    return (f"warning: rewardbench2: partial RewardBench 2 input (no {', '.join(missing)}): the overall is the "
            "mean of the subsets present, not the leaderboard score")


def selector(how: judge.Settings, list_method: str):
    """The `work` of evaluate on lists: each list's (method, selection); lists of one method advance together
    (`drive`)."""
    def select(eng, batch: list[dict]) -> list[tuple[str, Selection]]:
        got: dict[str, tuple[str, Selection]] = {}
        for method in LIST_METHODS:
            part = [r for r in batch if method_for(r, list_method) == method]
            if part:
                sels, _ = drive([len(r["candidates"]) for r in part], method, candidate_compare(eng, part, how))
                got.update({r["id"]: (method, sel) for r, sel in zip(part, sels)})
        return [got[r["id"]] for r in batch]
    return select


def report_md(models: dict[str, dict], meta: dict) -> str:
    names = sorted({s for m in models.values() for s in m["rewardbench2"]["subsets"]},
                   key=lambda s: (rb2.SUBSETS + (s,)).index(s))
    lines = ["# gramr2 evaluate: RewardBench 2 (pairwise adapter)", "",
             (f"best-of-n by {meta['list_method']} (Ties: round-robin, mean P), votes {meta['votes']}, orders "
              f"{meta['orders']}, prompt {meta['prompt']}, seed {meta['seed']}. Scores in %, official rules; "
              "overall = unweighted mean of the subsets present (the leaderboard's, when all six are)."), "",
             *[f"**{w}**\n" for w in meta.get("warnings", [])],
             "| model | " + " | ".join(names) + " | overall |", "|---|" + "---|" * (len(names) + 1)]
    for n, m in models.items():
        sub = m["rewardbench2"]["subsets"]
        cells = ["–" if sub.get(s, {}).get("score") is None else f"{100 * sub[s]['score']:.1f}" for s in names]
        o = m["rewardbench2"]["overall"]
        total = "–" if o["score"] is None else f"{100 * o['score']:.1f}" + ("" if o["complete"] else " (partial)")
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {total} |")
    return "\n".join(lines) + "\n"


def run(cfg: Config, inputs: list, output: Path, *, specs: list[str], slugs: list[str], engines: dict | None = None,
        overwrite: bool = False, progress: bool = True) -> shards.Summary:
    """Judge every list with each model and write the RewardBench 2 report (`evaluate.list_method` is checked
    with the recipe: EvaluateConfig.check). Raises GramrError for inputs with no list."""
    t0 = time.time()
    skipped: Counter = Counter()
    recs = read_lists(inputs, cfg.seed, skipped)
    if not recs:
        raise GramrError(f"no best-of-n lists in {', '.join(map(str, inputs))}")
    report, counts = {}, Counter()
    ec = cfg.evaluate
    how = judge.settings(cfg, "evaluate", votes=ec.votes, orders=ec.orders, tie_break=ec.tie_break)
    want = {r["id"] for r in recs}
    for spec, name, pred_dir, stats in runner.each_model(
            cfg, specs, slugs, output, recs, stage="evaluate", section="evaluate", inputs=inputs,
            work=selector(how, ec.list_method), handle=lambda rec, res: dict(rec, meta=dict(rec["meta"],
                                                                                              rb2=scored(rec, *res))),
            batch_size=ec.batch_size, given=engines, overwrite=overwrite, progress_on=progress,
            desc="evaluate lists"):
        preds = [p for p in readers.read([pred_dir], normalize=normalize_list) if p["id"] in want]
        report[name] = {"spec": spec, "predictions": str(pred_dir), "rewardbench2": list_metrics(preds)}
        counts.update({"lists_judged": stats["judged"], "lists_resumed": stats["resumed"]})
    warnings = [w for w in (partial_warning(next(iter(report.values()))["rewardbench2"]),) if w]
    for w in warnings:
        note(w)
    meta = {"votes": ec.votes, "orders": ec.orders, "list_method": ec.list_method, "prompt": cfg.prompt,
            "seed": cfg.seed, "inputs": [str(i) for i in inputs], "lists": len(recs), "skipped": dict(skipped),
            "warnings": warnings}
    outdir.atomic_write(output / "report.json", json.dumps({"config": meta, "models": report}, indent=2))
    outdir.atomic_write(output / "report.md", report_md(report, meta))
    summary_metrics: dict[str, Any] = {f"{n}: rewardbench2": r["rewardbench2"]["overall"]["score"]
                                       for n, r in report.items()}
    summary_metrics.update({f"{n}: rewardbench2 complete": r["rewardbench2"]["overall"]["complete"]
                            for n, r in report.items()})
    if warnings:
        summary_metrics["warnings"] = warnings
    summary = shards.Summary("evaluate", {"lists": len(recs), **counts}, dict(skipped), time.time() - t0,
                             [str(output / "report.md"), str(output / "report.json")], summary_metrics)
    outdir.atomic_write(output / "summary.json", json.dumps(summary.to_dict(), indent=2))
    return summary
