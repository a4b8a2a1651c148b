"""self-label: the current reward model judges unlabeled pairs (votes, majority label, confidence).

Each pair is judged `samples` times per presentation order (`judge.judge_pairs`); the majority verdict becomes
the pseudo-label `l` of the self-training loop, and the whole judgment (votes, agreement, confidence, P(A),
order consistency, parse counts, the RM's raw samples) goes to `meta.judgment` for `filter`. A tie or no
parseable verdict leaves `label` null with `meta.judgment.reason`. A label the input already had is moved to
`meta.gold_label` (never overwriting one that is there), so `filter` can report pseudo-label precision.

Resume is exact: the engines draw each prompt's samples from a seed of (seed, prompt text, sample index), so a
pair's votes do not depend on its batch; on top of that, batches are cut from the whole input and a rerun
regenerates a half-written batch whole, so even an engine without per-prompt seeds repeats an uninterrupted run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import runner
from ..core import config, prompts, readers, shards
from ..judging import judge
from ..judging.metrics import precision

if TYPE_CHECKING:
    from ..recipe import Config


@dataclass
class SelfLabelConfig:
    samples: int = 4                # votes per order, m (paper: not stated)
    orders: str = "ab"              # ab | both: also judge with the responses swapped (paper: not stated)
    temperature: float = 0.8        # sampling temperature of the votes (paper: not stated)
    tie_break: bool = False         # break vote ties by mean P(A); off = a tie stays unlabeled
    keep_samples: bool = True       # keep the RM's raw outputs in meta.judgment.samples
    keep_rationale: bool = True     # put the RM's own rationale for the majority label into `rationale`

    def check(self) -> list[str]:
        """Problems of this section (keys relative to `self_label`)."""
        return [*config.at_least("samples", self.samples, 1), *config.choice("orders", self.orders, judge.ORDERS),
                *config.at_least("temperature", self.temperature, 0)]


# ---------------------------------------------------------------- self-label

def majority_rationale(j: judge.Judgment) -> str | None:
    """The rationale of the first AB-order sample that voted for the majority label (BA-order rationales name
    the responses the other way round, so they are never used)."""
    for s in j.samples:
        if s["order"] == "ab" and j.label is not None and s["verdict"] == j.label:
            return prompts.parse_rationale(s["text"])
    return None


def labeled_record(rec: dict, j: judge.Judgment, cfg: Config) -> dict:
    """`rec` with the pseudo-label and `meta.judgment`; the input label (if any) moves to meta.gold_label."""
    out = dict(rec)
    meta = dict(rec.get("meta") or {})
    if rec.get("label") is not None:
        if "gold_label" in meta:
            meta["input_label"] = rec["label"]
        else:
            meta["gold_label"] = rec["label"]
    jm = j.to_meta(keep_samples=cfg.self_label.keep_samples)
    jm["orders"] = cfg.self_label.orders
    meta["judgment"] = jm
    meta["prompt_version"] = cfg.prompt
    out["label"] = j.label
    if cfg.self_label.keep_rationale:
        if rec.get("rationale") is not None:
            meta["input_rationale"] = rec["rationale"]
        out["rationale"] = majority_rationale(j)
    out["meta"] = meta
    return out


def run(cfg: Config, inputs: list[Path], output: Path | str, *, engine=None, overwrite: bool = False,
        shard_index: int | None = None, num_shards: int | None = None, progress: bool = True) -> shards.Summary:
    """Judge every pair of `inputs` with `cfg.model` and write it with its pseudo-label to `output`.

    `engine` is an already loaded engine (tests, the self-train loop); by default `cfg.model` is loaded with
    `cfg.generate`. With `generate.verdict_only` each order gets one forced-answer verdict (`judge.judge_pairs`).
    Raises GramrError for bad inputs, an unknown `orders`, or `samples` < 1.
    """
    sl = cfg.self_label
    config.ensure(sl, "self_label.")
    how = judge.settings(cfg, "self_label", votes=sl.samples, orders=sl.orders, tie_break=sl.tie_break,
                         temperature=sl.temperature)
    resolved = config.sections(cfg, "model", "prompt", "seed", "generate", "self_label")
    with runner.open_output(output, stage="self-label", config=resolved, inputs=inputs, overwrite=overwrite,
                            shard_index=shard_index, num_shards=num_shards,
                            provenance={"model": cfg.model, "seed": cfg.seed, "prompt_version": cfg.prompt},
                            batch_size=cfg.generate.batch_size) as out:
        recs, _ = runner.read_left(out, inputs)

        def labeled(rec: dict, j: judge.Judgment) -> dict:
            lab = labeled_record(rec, j, cfg)
            out.counts[f"label:{lab['label']}"] += 1
            if j.reason:
                out.counts[f"unlabeled:{j.reason}"] += 1
            return lab

        runner.run_model(out, cfg, recs, how.judge, labeled, engine=engine, batch_size=cfg.generate.batch_size,
                         progress_on=progress, desc="self-label")
        if not out.to_stdout:
            written = readers.read_all([out.part_path()]) if out.part_path().exists() else []
            out.metrics.update(_metrics(written))
    return out.summary()


def _metrics(written: list[dict]) -> dict:
    """Numbers over everything in the output (resumed runs included): label balance, parse and agreement,
    truncation counts (`judge.tally`), and, when gold labels exist, pseudo-label precision."""
    js = [r["meta"]["judgment"] for r in written]
    m: dict = {"labels": dict(Counter(str(r["label"]) for r in written))}
    if js:
        votes = sum(sum(j["votes"].values()) for j in js)
        m["parse_rate"] = sum(j["parse_ok"] for j in js) / votes if votes else 0.0
        m["mean_agreement"] = sum(j["agreement"] for j in js) / len(js)
        oc = [j["order_consistent"] for j in js if j.get("order_consistent") is not None]
        if oc:
            m["order_consistency"] = sum(oc) / len(oc)
    m.update(judge.tally(js))
    p = precision(written)
    if p["n"]:
        m["precision_vs_gold"] = p["precision"]
    return m
