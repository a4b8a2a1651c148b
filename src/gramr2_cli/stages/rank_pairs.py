"""rank pairs: pairwise verdicts (voting@k, both orders) on pair records.

Each pair gets `meta.judgment` (DESIGN §2): votes, majority label, `p_a` = P(A better) averaged over samples and
presentation orders, and whether the two orders agreed. The summary reports the parse rate, ties, order
disagreement and, where pairs carry a gold label (`judge.gold_label`), accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import runner
from ..core import readers, shards
from ..judging import judge
from ..judging.rank import pair_metrics, provenance, resolved, settings

if TYPE_CHECKING:
    from ..recipe import Config


def run(cfg: Config, inputs: list[Path], output: Path, *, engine=None, overwrite: bool = False,
        shard_index: int | None = None, num_shards: int | None = None, progress: bool = True) -> shards.Summary:
    """Judge every pair (rank.votes samples per order, rank.orders) and write it with `meta.judgment`."""
    rc = cfg.rank
    how = settings(cfg)
    with runner.open_output(output, stage="rank", config=resolved(cfg), inputs=inputs, overwrite=overwrite,
                            shard_index=shard_index, num_shards=num_shards, provenance=provenance(cfg),
                            batch_size=rc.batch_size) as out:
        recs, _ = runner.read_left(out, inputs)
        all_j, gold = [], []

        def judged(rec: dict, j: judge.Judgment) -> dict:
            rec["meta"]["judgment"] = j.to_meta(keep_samples=rc.keep_samples)
            all_j.append(j)
            gold.append(judge.gold_label(rec))
            return rec

        runner.run_model(out, cfg, recs, how.judge, judged, engine=engine, batch_size=rc.batch_size,
                         progress_on=progress, desc="rank pairs")
        if out.resumed:                     # report on the whole output, not only this run's share
            out.flush()
            done = list(readers.read([out.part_path()]))
            all_j = [judge.Judgment(**r["meta"]["judgment"]) for r in done]
            gold = [judge.gold_label(r) for r in done]
        out.metrics.update(pair_metrics(all_j, gold))
        out.metrics.update({"votes": rc.votes, "orders": rc.orders})
    return out.summary()
