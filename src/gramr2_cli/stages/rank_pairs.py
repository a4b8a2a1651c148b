"""rank pairs: pairwise verdicts (voting@k, both orders) on pair records.

Each pair gets `meta.judgment` (DESIGN §2): votes, majority label, `p_a` = P(A better) averaged over samples and
presentation orders, and whether the two orders agreed. The summary reports the parse rate, ties, order
disagreement and, where pairs carry a gold label (`judge.gold_label`), accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config, judge, runner, shards

if TYPE_CHECKING:
    from ..recipe import Config


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
            done = list(shards.read([out.part_path()]))
            all_j = [judge.Judgment(**r["meta"]["judgment"]) for r in done]
            gold = [judge.gold_label(r) for r in done]
        out.metrics.update(pair_metrics(all_j, gold))
        out.metrics.update({"votes": rc.votes, "orders": rc.orders})
    return out.summary()
