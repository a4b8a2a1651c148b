"""rank list: best-of-n over each record's candidates ({"prompt": ..., "candidates": [...]}).

A record's candidates are compared as judge pairs (prompt, candidate i, candidate j) by the selection algorithm
`rank.method` (`selection.py`, pure); `selection.drive` advances every record of a batch together, so one engine call
carries the same step of all of them. Each record gets `meta.rank`: winner (index), ranking, every comparison
with its P(first better), and the number of judge calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import runner
from ..core import shards
from ..core.records import normalize_list
from ..judging import judge
from ..judging.rank import pair_metrics, provenance, resolved, settings
from ..judging.selection import candidate_compare, drive

if TYPE_CHECKING:
    from ..recipe import Config


def run(cfg: Config, inputs: list[Path], output: Path, *, engine=None, overwrite: bool = False,
        shard_index: int | None = None, num_shards: int | None = None, progress: bool = True) -> shards.Summary:
    """Best-of-n per record with rank.method; adds meta.rank {method, winner, ranking, comparisons, judge_calls}."""
    rc = cfg.rank
    how = settings(cfg)                     # checks the rank section (rank.method included)
    per_cmp = len(judge.ORDERS[rc.orders])
    with runner.open_output(output, stage="rank", config=resolved(cfg), inputs=inputs, overwrite=overwrite,
                            shard_index=shard_index, num_shards=num_shards, provenance=provenance(cfg),
                            batch_size=rc.batch_size) as out:
        recs, _ = runner.read_left(out, inputs, normalize=normalize_list)
        totals = {"comparisons": 0, "judge_calls": 0, "engine_rounds": 0, "candidates": 0}
        js: list[judge.Judgment] = []

        def select(eng, batch: list[dict]) -> list:
            sels, rounds = drive([len(r["candidates"]) for r in batch], rc.method, candidate_compare(eng, batch, how, js))
            totals["engine_rounds"] += rounds
            return sels

        def ranked(rec: dict, sel) -> dict:
            ncmp = len(sel.comparisons)
            rec["meta"]["rank"] = {
                "method": rc.method, "winner": sel.winner, "ranking": sel.ranking,
                "comparisons": [[i, j, round(p, 6)] for i, j, p in sel.comparisons],
                "judge_calls": ncmp * per_cmp, "samples": ncmp * per_cmp * rc.votes}
            totals["comparisons"] += ncmp
            totals["judge_calls"] += ncmp * per_cmp
            totals["candidates"] += len(rec["candidates"])
            return rec

        runner.run_model(out, cfg, recs, select, ranked, engine=engine, batch_size=rc.batch_size,
                         progress_on=progress, desc=f"rank list ({rc.method})")
        out.metrics.update(totals)
        out.metrics.update({"method": rc.method, "votes": rc.votes, "orders": rc.orders})
        if js:
            pm = pair_metrics(js, [None] * len(js))
            out.metrics["parse_rate"] = pm["parse_rate"]
            if "order_disagreement" in pm:
                out.metrics["order_disagreement"] = pm["order_disagreement"]
    return out.summary()
