"""Reading records (DESIGN §3): any record source → normalized pair records, with sharding and dedupe.

Sources: a JSONL file, a JSON array file, a Parquet file, a `datasets.save_to_disk` directory, a shard
directory (its `part-*.jsonl`), or `-` for stdin. `read()` is the one reader every stage uses;
`input_fingerprint()` is what an output's manifest (`shards`) records of its inputs.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from . import outguard, records
from .errors import GramrError

PART_GLOB = "part-*.jsonl"


def shard_of(record_id: str, num_shards: int) -> int:
    """Which of `num_shards` shards owns `record_id` (a stable hash, not Python's salted `hash`)."""
    return int(hashlib.sha256(record_id.encode("utf-8")).hexdigest()[:8], 16) % num_shards


def _part_files(d: Path) -> list[Path]:
    return sorted(d.glob(PART_GLOB))


def source_files(inputs: Iterable[Path | str]) -> list[Path | str]:
    """Expand inputs to the concrete sources `read_raw` understands. Raises GramrError for a missing path."""
    out: list[Path | str] = []
    for inp in inputs:
        if str(inp) == "-":
            out.append("-")
            continue
        p = Path(inp)
        if not p.exists():
            raise GramrError(f"{p}: no such file or directory")
        if p.is_dir():
            parts = _part_files(p)
            if parts:
                out.extend(parts)
            elif (p / "dataset_info.json").exists() or (p / "state.json").exists():
                out.append(p)  # a datasets.save_to_disk directory
            elif any(p.glob("manifest*.json")) and not (p / "config.json").exists():
                pass  # a stage output that wrote no record (e.g. filter rejected all): empty, not an error
            else:
                files = sorted([*p.glob("*.jsonl"), *p.glob("*.json"), *p.glob("*.parquet")])
                files = [f for f in files if not f.name.startswith(("manifest", "summary"))]
                if not files:
                    raise GramrError(f"{p}: no records found (no part-*.jsonl, *.jsonl, *.json, *.parquet)")
                out.extend(files)
        else:
            out.append(p)
    return out


def _lone_surrogate(obj: Any) -> str | None:
    """The first string in `obj` (keys included) that is not valid Unicode, or None. A JSON `\\ud800` escape
    without its pair decodes to such a string, which no UTF-8 file can hold: writing it would fail."""
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            try:
                x.encode("utf-8")
            except UnicodeEncodeError:
                return x
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return None


def loads(text: str, where: str) -> Any:
    """`json.loads` for untrusted text: RecursionError (nesting deeper than Python's stack) and lone surrogates
    become GramrError naming `where`; json.JSONDecodeError is left to the caller."""
    try:
        obj = json.loads(text)
    except RecursionError:
        raise GramrError(f"{where}: JSON nested too deeply to read") from None
    bad = _lone_surrogate(obj) if "\\u" in text else None       # only an escape can make one: cheap test first
    if bad is not None:
        at = next(i for i, ch in enumerate(bad) if 0xD800 <= ord(ch) <= 0xDFFF)
        raise GramrError(f"{where}: a lone surrogate (\\u{ord(bad[at]):04x} at character {at} of a string) is "
                         "not valid Unicode", hint="the writer split a UTF-16 pair; fix or drop that text")
    return obj


def _jsonl_lines(text_lines: Iterable[bytes], name: str) -> Iterator[tuple[str, Any]]:
    lines = list(text_lines)
    for i, raw in enumerate(lines, 1):
        where = f"{name} line {i}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise GramrError(f"{where}: not valid UTF-8 (byte {e.start})",
                             hint="re-encode the file as UTF-8") from None
        if not line.strip():
            continue
        try:
            obj = loads(line, where)
        except json.JSONDecodeError as e:
            if i == len(lines) and not raw.endswith(b"\n"):
                raise GramrError(f"{where}: truncated JSON line (the file ends mid-record)",
                                 hint="the writer was interrupted; drop the last line or rerun it") from None
            raise GramrError(f"{where}: invalid JSON ({e.msg})") from None
        yield where, obj


def read_raw(src: Path | str) -> Iterator[tuple[str, Any]]:
    """Yield (where, object) from one source, `where` naming file and line for error messages."""
    if src == "-":
        yield from _jsonl_lines(sys.stdin.buffer.read().splitlines(keepends=True), "<stdin>")
        return
    p = Path(src)
    if p.is_dir():
        import datasets
        try:
            ds = datasets.load_from_disk(str(p))
        except Exception as e:  # datasets raises many types for a bad directory
            raise GramrError(f"{p}: not a readable datasets directory ({e})") from None
        if isinstance(ds, datasets.DatasetDict):
            raise GramrError(f"{p}: holds splits {list(ds)}; pass one split's directory")
        for i, row in enumerate(ds):
            yield f"{p} row {i}", row
        return
    if p.suffix == ".parquet":
        import datasets
        try:
            ds = datasets.Dataset.from_parquet(str(p))
        except Exception as e:
            raise GramrError(f"{p}: not a readable Parquet file ({e})") from None
        for i, row in enumerate(ds):
            yield f"{p} row {i}", row
        return
    if p.suffix.lower() in (".csv", ".tsv"):
        sep = "\\t" if p.suffix.lower() == ".tsv" else ","
        raise GramrError(f"{p}: CSV is not supported, convert with: python -c \"import pandas as pd; "
                         f"pd.read_csv('{p}', sep='{sep}').to_json('{p.with_suffix('.jsonl')}', orient='records', "
                         f"lines=True, force_ascii=False)\"")
    data = p.read_bytes()
    if not data.strip():
        raise GramrError(f"{p}: empty file")
    if data.lstrip()[:1] == b"[":
        try:
            arr = loads(data.decode("utf-8"), str(p))
        except UnicodeDecodeError as e:
            raise GramrError(f"{p}: not valid UTF-8 (byte {e.start})", hint="re-encode the file as UTF-8") from None
        except json.JSONDecodeError as e:
            raise GramrError(f"{p}: invalid JSON array (line {e.lineno}: {e.msg})") from None
        for i, obj in enumerate(arr):
            yield f"{p} item {i}", obj
        return
    yield from _jsonl_lines(data.splitlines(keepends=True), str(p))


def read(inputs: Iterable[Path | str], *, skip: set[str] | frozenset = frozenset(), shard_index: int | None = None,
         num_shards: int | None = None, skipped: Counter | None = None, require_label: bool = False,
         on_bad: str = "error", normalize: Callable[[Any, str], dict] | None = None) -> Iterator[dict]:
    """Yield normalized pair records from `inputs` (`normalize(obj, where)` reads another record kind instead:
    `rank list`'s candidate lists).

    Skips ids in `skip` (already written, for resume), ids not owned by this shard, and repeated ids; each skip
    is counted in `skipped` by reason. `on_bad="skip"` counts an invalid record as `invalid_record` instead of
    raising. Raises GramrError for unreadable inputs and (by default) invalid records.
    """
    skipped = skipped if skipped is not None else Counter()
    seen: set[str] = set()
    for src in source_files(inputs):
        for where, obj in read_raw(src):
            try:
                rec = normalize(obj, where) if normalize else records.normalize(obj, where,
                                                                               require_label=require_label)
            except GramrError:
                if on_bad == "skip":
                    skipped["invalid_record"] += 1
                    continue
                raise
            rid = rec["id"]
            if rid in seen:
                skipped["duplicate_id"] += 1
                continue
            seen.add(rid)
            if num_shards and num_shards > 1 and shard_of(rid, num_shards) != (shard_index or 0):
                continue
            if rid in skip:
                skipped["already_done"] += 1
                continue
            yield rec


def read_all(inputs: Iterable[Path | str], **kw) -> list[dict]:
    return list(read(inputs, **kw))


def input_fingerprint(inputs: Iterable[Path | str]) -> str:
    """sha256 (first 12 hex) of every source file's absolute path and size in bytes (`-` for stdin): cheap, and
    different when an input is another file or has grown or shrunk. Ours; an edit that keeps the size (or a copy
    to another path, which changes it) is not told apart from the content itself."""
    items = []
    for src in source_files(inputs):
        if src == "-":
            items.append(["-", None])
            continue
        p = Path(src)
        files = sorted(f for f in p.rglob("*") if f.is_file() and not outguard.is_lock(f)) if p.is_dir() else [p]
        items += [[str(f.resolve()), f.stat().st_size] for f in files]
    return hashlib.sha256(json.dumps(items).encode("utf-8")).hexdigest()[:12]
