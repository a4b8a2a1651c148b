"""data import: outside preference data → pair shards (the stage behind `gramr2 data import`).

The row formats and the conversion are `formats`; this module only streams `formats.convert` into a resumable
shard directory. A failed import (bad input) removes the output directory it created, so no half-written
output is left to resume. Records a benchmark scorer cannot use (`formats.scorer_gap`) are imported and counted,
and the summary gets one warning line per reason (`summary.metrics["warnings"]`, printed by the CLI).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ..core import formats, readers, shards
from ..core.shards import Summary

GAP_WARNINGS = {
    "rmbench_no_domain": "{n} RM-Bench pairs have no RM-Bench domain (chat, math, code, safety-…): evaluate gives "
                         "them no RM-Bench score; import total_dataset.json (it has a 'domain' field) or the "
                         "per-domain files under their released names (chat_filtered.json, …)",
    "judgebench_no_category": "{n} JudgeBench pairs have a 'source' that names no JudgeBench category (mmlu-pro…, "
                              "livebench-reasoning…, livebench-math…, livecodebench…): evaluate gives them no "
                              "JudgeBench score",
}


def gap_warnings(gaps: Counter) -> list[str]:
    """One `warning: …` line per reason a benchmark scorer cannot use some imported records."""
    return [f"warning: {GAP_WARNINGS[k].format(n=n)}" for k, n in sorted(gaps.items())]


def run(cfg: formats.ImportConfig, inputs: list, output: Path | str, *, overwrite: bool = False,
        shard_index: int | None = None, num_shards: int | None = None,
        progress: Callable[[int], None] | None = None) -> Summary:
    """Import `inputs` into the shard directory `output` (or JSONL on stdout for `-`); resumable.

    Skips ids already written (resume), ids owned by another shard (by `meta.pair_group`, so both orders of a
    pair stay together), and repeated ids (`duplicate_id`). Raises GramrError for unreadable or malformed input."""
    skipped: Counter = Counter()
    labels: Counter = Counter()
    detected: dict[str, str] = {}
    gaps: Counter = Counter()
    seen: set[str] = set()
    hashed = {k: v for k, v in asdict(cfg).items() if k != "batch_size"}   # flush size never changes the output
    with shards.open_output(output, stage="import", config={"import": hashed}, inputs=inputs,
                            overwrite=overwrite, shard_index=shard_index, num_shards=num_shards,
                            batch_size=cfg.batch_size, discard_on_error=True) as out:
        n = 0
        for _, rec in formats.convert(inputs, cfg, skipped, detected, gaps):
            n += 1
            if progress:
                progress(n)
            if num_shards and num_shards > 1 and readers.shard_of(rec["meta"]["pair_group"], num_shards) != \
                    (shard_index or 0):
                continue
            if rec["id"] in seen:
                skipped["duplicate_id"] += 1
                continue
            seen.add(rec["id"])
            labels[str(rec["label"])] += 1
            if rec["id"] in out.done_ids:
                continue
            out.write(rec)
        for k, v in skipped.items():
            out.skip(k, v)
        out.counts["converted"] = n
        out.metrics.update(labels=dict(sorted(labels.items())), formats=detected)
        if gaps:
            out.metrics["warnings"] = gap_warnings(gaps)
    return out.summary()
