"""Natural-order pairs → pair records in the requested order(s); `convert` streams a whole input."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from .. import readers, records
from ..errors import GramrError
from .importers import (
    FORMATS,
    IMPORTERS,
    UNLABELED_FORMATS,
    detect,
    import_rmbench,
    rmbench_file_domain,
    scorer_gap,
)
from .rows import Skip

PLACEMENTS = ("fixed", "random", "both")   # `data import --order`: where the first response is shown (not
                                         # judge.ORDERS, the presentation orders a judge sees)


@dataclass
class ImportConfig:
    format: str = "auto"         # auto | pairs | helpsteer3 | rmbench | judgebench | rewardbench
    order: str = "random"        # random (default: seeded coin per pair, ~half the labels A) | fixed | both (ours)
    seed: int = 0                # only `random` uses it
    source: str = ""             # the records' `source`; "" = the format's name
    batch_size: int = 256        # records per flush of the part file
    unlabeled: bool = False      # move every label to meta.gold_label (for self-labeling; precision measurable)


def flip(key: str, seed: int) -> bool:
    """Seeded, per-pair coin for `--order random`: depends only on the pair and the seed."""
    return hashlib.sha256(f"{seed}\u241f{key}".encode()).digest()[0] & 1 == 1


_RESPONSE_LETTER = re.compile(r"\bResponse ([AB])\b")


def swap_rationale(text: str | None) -> str | None:
    """A rationale for the swapped presentation: "Response A" and "Response B" trade places."""
    if text is None:
        return None
    return _RESPONSE_LETTER.sub(lambda m: "Response " + ("B" if m.group(1) == "A" else "A"), text)


def _id(prompt: str, a: str, b: str, key: str | None) -> str:
    base = records.make_id(prompt, a, b)
    if key is None:
        return base
    return hashlib.sha256(f"{base}{records.SEP}{key}".encode()).hexdigest()[:16]


def to_records(pair: tuple, order: str, seed: int, source: str, where: str, unlabeled: bool = False) -> list[dict]:
    """Natural-order (prompt, first, second, label, rationale, meta[, key]) → pair records in the requested
    order(s). Ids are content hashes; `key` (RM-Bench's style cell) keeps pairs with equal text but different
    roles apart. `meta.pair_group` is the id of the natural order, shared by both orders of `--order both`.
    `unlabeled` moves the (presentation-order) label to `meta.gold_label` and drops the rationale."""
    prompt, first, second, label, rationale, meta, *rest = pair
    key = rest[0] if rest else None
    group = _id(prompt, first, second, key)
    swapped = {"fixed": [False], "both": [False, True], "random": [flip(group, seed)]}[order]
    out = []
    for sw in swapped:
        a, b, lab = (second, first, records.swap_label(label)) if sw else (first, second, label)
        m = dict(meta, pair_group=group, order="ba" if sw else "ab")
        rat = swap_rationale(rationale) if sw else rationale
        if unlabeled:
            m["gold_label"], lab, rat = lab, None, None
        out.append(records.normalize({"id": _id(prompt, a, b, key), "prompt": prompt, "response_a": a,
                                      "response_b": b, "label": lab, "rationale": rat,
                                      "source": source, "meta": m}, where))
    return out


def convert(inputs: list, cfg: ImportConfig, skipped: Counter,
            detected: dict | None = None, gaps: Counter | None = None) -> Iterator[tuple[str, dict]]:
    """Yield (where, record) for every importable row of `inputs`; dropped rows are counted in `skipped`.
    The format is detected per file (from its first row) when `cfg.format` is auto; `detected` gets
    {file: format}; `gaps` counts the records a benchmark scorer cannot use, by reason (`scorer_gap`).
    RM-Bench rows without a `domain` take it from the released per-domain file's name (`rmbench_file_domain`)."""
    if cfg.format not in FORMATS:
        raise GramrError(f"unknown format {cfg.format!r}; choose from {', '.join(FORMATS)}")
    if cfg.order not in PLACEMENTS:
        raise GramrError(f"unknown order {cfg.order!r}; choose from {', '.join(PLACEMENTS)}")
    for src in readers.source_files(inputs):
        fmt = None if cfg.format == "auto" else cfg.format
        for where, row in readers.read_raw(src):
            if fmt is None:
                fmt = detect(row, where)
            if detected is not None:
                detected.setdefault(str(src), fmt)
            try:
                pairs = (import_rmbench(row, where, rmbench_file_domain(src)) if fmt == "rmbench"
                         else IMPORTERS[fmt](row, where))
            except Skip as s:
                skipped[s.reason] += 1
                continue
            unlabeled = cfg.unlabeled or fmt in UNLABELED_FORMATS
            for p in pairs:
                for rec in to_records(p, cfg.order, cfg.seed, cfg.source or fmt, where, unlabeled):
                    gap = scorer_gap(fmt, rec)
                    if gap and gaps is not None:
                        gaps[gap] += 1
                    yield where, rec
