"""Record-set tools behind `gramr2 data stats | merge | split`: pure functions + `run`-style wrappers.

- `stats`: counts, label balance, rationale count, length percentiles (characters), categories, sources.
- `merge`: many record sets / shard parts → one shard directory, first occurrence of an id wins (counted).
  An input that is an unfinished stage output (manifest `done: false`, or 3 of 4 shards) is refused unless
  `allow_partial`: a merged set silently short of a failed array task's records is worse than an error.
- `split`: a seeded partition by ratio or count. Pairs with the same prompt text (both orders of one pair,
  the 9 RM-Bench style cells of one source prompt, every response pair of one prompt) always land in the
  same part, so a test split never shares a prompt with a train split.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import outdir, readers, shards
from .errors import GramrError
from .shards import Summary

LENGTH_FIELDS = ("prompt", "response_a", "response_b", "rationale")


# ---------------------------------------------------------------- stats

def percentile(sorted_values: list[int], p: float) -> int | None:
    """Nearest-rank percentile of an ascending list (p in 0..100); None for an empty list."""
    if not sorted_values:
        return None
    k = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[k - 1]


def stats(recs: list[dict] | object) -> dict:
    """Numbers describing a record set (what `gramr2 data stats --json` prints)."""
    n = 0
    labels: Counter = Counter()
    cats: Counter = Counter()
    sources: Counter = Counter()
    lengths: dict[str, list[int]] = {f: [] for f in LENGTH_FIELDS}
    rationales = 0
    for r in recs:
        n += 1
        labels[r["label"] if r["label"] is not None else "null"] += 1
        cats[str(r["meta"].get("category", "(none)"))] += 1
        sources[r["source"] or "(none)"] += 1
        for f in LENGTH_FIELDS:
            if r.get(f) is not None:
                lengths[f].append(len(r[f]))
        rationales += r.get("rationale") is not None
    labeled = labels["A"] + labels["B"]
    out = {
        "count": n, "labeled": labeled, "unlabeled": labels["null"],
        "label_A": labels["A"], "label_B": labels["B"],
        "share_A": round(labels["A"] / labeled, 4) if labeled else None,
        "rationales": rationales,
        "lengths": {},
        "categories": dict(cats.most_common()), "sources": dict(sources.most_common()),
    }
    for f, vals in lengths.items():
        vals.sort()
        out["lengths"][f] = {"n": len(vals), "p50": percentile(vals, 50), "p90": percentile(vals, 90),
                             "max": vals[-1] if vals else None}
    return out


# ---------------------------------------------------------------- merge

def unfinished_inputs(inputs: list) -> dict[str, str]:
    """{input: why} for every input directory that is an unfinished stage output (see `outdir.unfinished`)."""
    out = {}
    for inp in inputs:
        if str(inp) != "-" and Path(inp).is_dir():
            why = outdir.unfinished(inp)
            if why:
                out[str(inp)] = why
    return out


def merge(inputs: list, output: Path | str, *, overwrite: bool = False, allow_partial: bool = False) -> Summary:
    """Join record sets (files, shard dirs, the parts of a `--num-shards` run) into one shard directory.
    Repeated ids are skipped and counted (`duplicate_id`); every field of the first occurrence is kept.

    Raises GramrError when an input is an unfinished stage output, unless `allow_partial` (then the summary's
    `metrics.partial_inputs` names them, for the caller to warn)."""
    partial = unfinished_inputs(inputs)
    if partial and not allow_partial:
        raise GramrError("unfinished input: " + "; ".join(f"{k}: {v}" for k, v in partial.items())
                         + " (--allow-partial merges what is there)",
                         hint="finish or rerun the missing shards first")
    skipped: Counter = Counter()
    cfg = {"merge": {"inputs": [str(i) for i in inputs]}}
    with shards.open_output(output, stage="merge", config=cfg, inputs=inputs, overwrite=overwrite,
                            batch_size=1024) as out:
        for rec in readers.read(inputs, skipped=skipped, skip=frozenset(out.done_ids)):
            out.write(rec)
        for k, v in skipped.items():
            out.skip(k, v)
        if partial:
            out.metrics["partial_inputs"] = partial
    return out.summary()


# ---------------------------------------------------------------- split

@dataclass
class SplitConfig:
    ratio: list[float] = field(default_factory=list)   # e.g. [0.8, 0.2]; one per name
    count: list[int] = field(default_factory=list)     # sizes of the first parts; the last part gets the rest
    names: list[str] = field(default_factory=lambda: ["train", "test"])
    seed: int = 0


def split_sizes(n: int, cfg: SplitConfig) -> list[int]:
    """Target record counts per part. Raises GramrError for inconsistent ratio/count/names."""
    if bool(cfg.ratio) == bool(cfg.count):
        raise GramrError("give exactly one of --ratio or --count")
    if len(set(cfg.names)) != len(cfg.names) or any(not x or "/" in x or "\0" in x or x in (".", "..")
                                                    for x in cfg.names):
        # `..` would put a part (and its manifest) in the parent of -o, `.` in -o itself
        raise GramrError(f"--names must be distinct directory names inside -o (not '.' or '..'), got {cfg.names}")
    if cfg.ratio:
        if len(cfg.ratio) != len(cfg.names):
            raise GramrError(f"--ratio has {len(cfg.ratio)} values but --names has {len(cfg.names)}")
        if any(r < 0 for r in cfg.ratio) or sum(cfg.ratio) <= 0:
            raise GramrError(f"--ratio values must be >= 0 with a positive sum, got {cfg.ratio}")
        total, cum, bounds = sum(cfg.ratio), 0.0, [0]
        for r in cfg.ratio:
            cum += r
            bounds.append(round(n * cum / total))
        return [b - a for a, b in itertools.pairwise(bounds)]
    if len(cfg.count) != len(cfg.names) - 1:
        raise GramrError(f"--count needs one size per part except the last ({len(cfg.names) - 1} for names "
                         f"{','.join(cfg.names)}), got {len(cfg.count)}")
    if any(c < 0 for c in cfg.count) or sum(cfg.count) > n:
        raise GramrError(f"--count {','.join(map(str, cfg.count))} asks for more than the {n} records there are")
    return [*cfg.count, n - sum(cfg.count)]


def assign(recs: list[dict], cfg: SplitConfig) -> dict[str, list[dict]]:
    """Seeded partition of `recs` into `cfg.names`, keeping all records of one prompt together (a prompt's
    pair groups, RM-Bench style cells, both orders). Independent of the input order (groups are keyed by a
    hash of the prompt and sorted before the seeded shuffle); sizes are met exactly when every prompt has one
    record, else as closely as whole groups allow."""
    groups: dict[str, list[dict]] = {}
    for r in recs:
        groups.setdefault(hashlib.sha256(r["prompt"].encode("utf-8")).hexdigest(), []).append(r)
    keys = sorted(groups)
    random.Random(cfg.seed).shuffle(keys)
    sizes = split_sizes(len(recs), cfg)
    out: dict[str, list[dict]] = {name: [] for name in cfg.names}
    part, filled = 0, 0
    for k in keys:
        while part < len(sizes) - 1 and filled >= sizes[part]:
            part, filled = part + 1, 0
        out[cfg.names[part]].extend(sorted(groups[k], key=lambda r: r["id"]))
        filled += len(groups[k])
    return out


def split(inputs: list, output: Path | str, cfg: SplitConfig, *, overwrite: bool = False) -> Summary:
    """Write `output/<name>/` shard directories. Raises GramrError on bad sizes or an existing output."""
    t0 = time.time()
    skipped: Counter = Counter()
    recs = readers.read_all(inputs, skipped=skipped)
    parts = assign(recs, cfg)
    counts, outputs = {}, []
    for name, rs in parts.items():
        s = shards.write_records(Path(output) / name, rs, stage="split", config={"split": asdict(cfg)},
                                 overwrite=overwrite, inputs=inputs)
        counts[name] = len(rs)
        outputs += s.outputs
    return Summary("split", {"in": len(recs), **counts}, dict(skipped), time.time() - t0, outputs)
