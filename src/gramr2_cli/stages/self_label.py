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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import judge, prompts, shards
from ..errors import GramrError
from ..progress import progress_bar

if TYPE_CHECKING:
    from ..config import Config


@dataclass
class SelfLabelConfig:
    samples: int = 4                # votes per order, m (paper: not stated)
    orders: str = "ab"              # ab | both: also judge with the responses swapped (paper: not stated)
    temperature: float = 0.8        # sampling temperature of the votes (paper: not stated)
    tie_break: bool = False         # break vote ties by mean P(A); off = a tie stays unlabeled
    keep_samples: bool = True       # keep the RM's raw outputs in meta.judgment.samples
    keep_rationale: bool = True     # put the RM's own rationale for the majority label into `rationale`


# ---------------------------------------------------------------- shared by prove and self-label

def fixed_batches(recs: list[dict], size: int, done_ids: set[str]) -> Iterator[tuple[int, list[dict]]]:
    """(index, batch) over fixed-size batches of the whole input, leaving out batches that are fully written.

    Cutting batches from the whole input (not from what is left) is what makes a resumed run generate exactly
    what an uninterrupted one does: a half-written batch is generated again, whole, with the same seed.
    """
    if size < 1:
        raise GramrError(f"generate.batch_size must be >= 1, got {size}")
    for i in range(0, len(recs), size):
        batch = recs[i:i + size]
        if any(r["id"] not in done_ids for r in batch):
            yield i // size, batch


def gold_label(rec: dict) -> str | None:
    """The known-correct label of a record, if any: `meta.gold_label` (synthetic data, moved labels)."""
    g = (rec.get("meta") or {}).get("gold_label")
    return g if g in ("A", "B") else None


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


def precision(recs: list[dict]) -> dict:
    """Share of labeled records whose label equals meta.gold_label, over records that have both."""
    pairs = [(r["label"], gold_label(r)) for r in recs if r.get("label") is not None and gold_label(r)]
    right = sum(a == b for a, b in pairs)
    return {"n": len(pairs), "correct": right, "precision": (right / len(pairs)) if pairs else None}


def run(cfg: Config, inputs: list[Path], output: Path | str, *, engine=None, overwrite: bool = False,
        shard_index: int | None = None, num_shards: int | None = None, progress: bool = True) -> shards.Summary:
    """Judge every pair of `inputs` with `cfg.model` and write it with its pseudo-label to `output`.

    `engine` is an already loaded engine (tests, the self-train loop); by default `cfg.model` is loaded with
    `cfg.generate`. Raises GramrError for bad inputs, an unknown `orders`, or `samples` < 1.
    """
    from .. import config as config_mod

    sl = cfg.self_label
    if sl.orders not in ("ab", "both"):
        raise GramrError(f"self_label.orders: unknown value {sl.orders!r}; choose from ab, both")
    if sl.samples < 1:
        raise GramrError(f"self_label.samples must be >= 1, got {sl.samples}")
    resolved = config_mod.sections(cfg, "model", "prompt", "seed", "generate", "self_label")
    with shards.open_output(output, stage="self-label", config=resolved, inputs=inputs, overwrite=overwrite,
                            shard_index=shard_index, num_shards=num_shards,
                            provenance={"model": cfg.model, "seed": cfg.seed, "prompt_version": cfg.prompt},
                            batch_size=cfg.generate.batch_size) as out:
        recs, todo = out.read_resumable(inputs)
        own_engine = engine is None and bool(todo)
        if own_engine:
            from ..engines import load_engine
            engine = load_engine(cfg.model, cfg.generate, cfg.seed)
        try:
            with progress_bar(progress) as bar:
                task = bar.add_task("self-label", total=len(todo))
                for _, batch in fixed_batches(recs, cfg.generate.batch_size, out.done_ids):
                    js = judge.judge_pairs(engine, batch, version=cfg.prompt, n=sl.samples, orders=sl.orders,
                                           temperature=sl.temperature, max_new_tokens=cfg.generate.max_new_tokens,
                                           seed=cfg.seed, top_p=cfg.generate.top_p,
                                           tie_break=sl.tie_break)
                    for rec, j in zip(batch, js):
                        if rec["id"] in out.done_ids:
                            continue
                        lab = labeled_record(rec, j, cfg)
                        out.counts[f"label:{lab['label']}"] += 1
                        if j.reason:
                            out.counts[f"unlabeled:{j.reason}"] += 1
                        out.write(lab)
                        bar.advance(task)
                    out.flush()
        finally:
            if own_engine:
                engine.close()
        if not out.to_stdout:
            written = shards.read_all([out.part_path()]) if out.part_path().exists() else []
            out.metrics.update(_metrics(written))
    return out.summary()


def _metrics(written: list[dict]) -> dict:
    """Numbers over everything in the output (resumed runs included): label balance, parse and agreement,
    and, when gold labels exist, pseudo-label precision."""
    js = [r["meta"]["judgment"] for r in written]
    m: dict = {"labels": dict(Counter(str(r["label"]) for r in written))}
    if js:
        votes = sum(sum(j["votes"].values()) for j in js)
        m["parse_rate"] = sum(j["parse_ok"] for j in js) / votes if votes else 0.0
        m["mean_agreement"] = sum(j["agreement"] for j in js) / len(js)
        oc = [j["order_consistent"] for j in js if j.get("order_consistent") is not None]
        if oc:
            m["order_consistency"] = sum(oc) / len(oc)
    p = precision(written)
    if p["n"]:
        m["precision_vs_gold"] = p["precision"]
    return m
