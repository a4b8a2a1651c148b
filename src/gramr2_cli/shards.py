"""Sharded record I/O (DESIGN §3): reading any record source, append-only resumable output, manifests.

Reading: a JSONL file, a JSON array file, a Parquet file, a `datasets.save_to_disk` directory, a shard
directory (its `part-*.jsonl`), or `-` for stdin. Writing: `open_output()` gives an `Output` whose part file is
append-only and flushed per batch; rerunning on the same directory skips ids already written and drops a
truncated last line left by a kill. `manifest.json`/`summary.json` are written to `*.tmp` then renamed, and the
manifest's `done: true` comes last.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import __version__, records
from .errors import GramrError

PART_GLOB = "part-*.jsonl"


# ---------------------------------------------------------------- reading

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
            obj = json.loads(line)
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
    data = p.read_bytes()
    if not data.strip():
        raise GramrError(f"{p}: empty file")
    if data.lstrip()[:1] == b"[":
        try:
            arr = json.loads(data.decode("utf-8"))
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


# ---------------------------------------------------------------- writing

def config_hash(config: Any) -> str:
    """sha256 (first 12 hex) of the resolved config, as canonical JSON."""
    blob = json.dumps(config, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:12]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: shard processes share a directory
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _recover_part(path: Path) -> set[str]:
    """Ids already in an existing part file; a truncated last line (no newline) from a kill is cut off."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            f.truncate(cut)
        data = data[:cut]
    ids = set()
    for line in data.splitlines():
        if line.strip():
            try:
                ids.add(json.loads(line)["id"])
            except (json.JSONDecodeError, KeyError):
                raise GramrError(f"{path}: corrupt line in an existing output; delete it or use --overwrite") from None
    return ids


@dataclass
class Summary:
    """What a stage did: counts, skips by reason, time, outputs, and stage-specific metrics."""
    stage: str
    counts: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"stage": self.stage, "counts": self.counts, "skipped": self.skipped,
                "seconds": round(self.seconds, 3), "outputs": self.outputs, "metrics": self.metrics}


class Output:
    """An append-only, resumable shard directory (or stdout for `-`). Use through `open_output()`."""

    def __init__(self, path: Path | str, stage: str, config: Any, inputs: list, overwrite: bool,
                 shard_index: int | None, num_shards: int | None, provenance: dict | None, batch_size: int):
        self.stage = stage
        self.to_stdout = str(path) == "-"
        self.path = Path(path)
        self.config = config
        self.hash = config_hash(config)
        self.inputs = [str(i) for i in inputs]
        self.shard_index = shard_index or 0
        self.num_shards = num_shards or 1
        self.provenance = {"stage": stage, "recipe_hash": self.hash, "gramr2_version": __version__,
                           **(provenance or {})}
        self.batch_size = batch_size
        self.counts: Counter = Counter()
        self.skipped: Counter = Counter()
        self.metrics: dict[str, Any] = {}
        self.done_ids: set[str] = set()
        self.resumed = 0
        self._files: dict[str, Any] = {}
        self._pending = 0
        self._t0 = time.time()
        if not self.to_stdout:
            self._prepare(overwrite)

    # -- setup
    def part_path(self, part: str | None = None) -> Path:
        name = f"part-{self.shard_index:05d}-of-{self.num_shards:05d}.jsonl"
        return self.path / part / name if part else self.path / name

    def _meta_name(self, base: str) -> str:
        """`manifest.json`, or one manifest per shard when several processes share the directory."""
        if self.num_shards == 1:
            return f"{base}.json"
        return f"{base}-{self.shard_index:05d}-of-{self.num_shards:05d}.json"

    def _prepare(self, overwrite: bool) -> None:
        man = self.path / self._meta_name("manifest")
        if self.path.exists() and not self.path.is_dir():
            raise GramrError(f"{self.path}: output exists and is not a directory")
        if overwrite and self.path.exists():
            shutil.rmtree(self.path)
        if man.exists():
            try:
                old = json.loads(man.read_text())
            except json.JSONDecodeError:
                raise GramrError(f"{man}: corrupt manifest; use --overwrite to start again") from None
            if old.get("stage") != self.stage or old.get("config_hash") != self.hash:
                raise GramrError(
                    f"{self.path}: holds output of '{old.get('stage')}' with a different config "
                    f"(hash {old.get('config_hash')} != {self.hash})",
                    hint="use --overwrite to replace it, or choose another -o")
        elif self.path.exists() and self.num_shards == 1 and any(self.path.iterdir()):
            raise GramrError(f"{self.path}: directory exists, is not empty and has no manifest.json",
                             hint="use --overwrite to replace it, or choose another -o")
        self.path.mkdir(parents=True, exist_ok=True)
        for part in self._existing_parts():
            ids = _recover_part(self.part_path(part))
            self.done_ids |= ids
            self.resumed += len(ids)
        _atomic_write(self.path / "config.yaml", yaml.safe_dump(self.config, sort_keys=False, allow_unicode=True))
        # (every shard process writes the same resolved config: identical bytes, so the last rename is harmless)
        self._write_manifest(done=False)

    def _existing_parts(self) -> list[str | None]:
        parts: list[str | None] = [None] if self.part_path().exists() else []
        for sub in sorted(p for p in self.path.iterdir() if p.is_dir()):
            if self.part_path(sub.name).exists():
                parts.append(sub.name)
        return parts

    # -- writing
    def _file(self, part: str | None):
        if self.to_stdout:
            return sys.stdout
        if part not in self._files:
            p = self.part_path(part)
            p.parent.mkdir(parents=True, exist_ok=True)
            self._files[part] = open(p, "a", encoding="utf-8")
        return self._files[part]

    def write(self, rec: dict, part: str | None = None, reasons: list[str] | None = None) -> None:
        """Append one record (to `part/` when given), adding provenance and drop reasons to its meta."""
        rec = dict(rec)
        meta = dict(rec.get("meta") or {})
        prov = dict(meta.get("provenance") or {})
        prov[self.stage] = self.provenance  # keyed by stage: earlier stages' provenance is kept
        meta["provenance"] = prov
        if reasons is not None:
            meta["reasons"] = reasons
        rec["meta"] = meta
        self._file(part).write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.counts["out" if part is None else part] += 1
        for r in reasons or []:
            self.counts[f"rejected:{r}"] += 1
        self.done_ids.add(rec["id"])
        self._pending += 1
        if self._pending >= self.batch_size:
            self.flush()

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += n

    def read_resumable(self, inputs: Iterable[Path | str], **read_kw) -> tuple[list[dict], list[dict]]:
        """(every record of this shard, those not written yet), counting read skips and `already_done`.

        Stages that cut fixed batches from the whole input (so a resumed run regenerates a half-written batch
        with the same seeds) need both lists."""
        skipped: Counter = Counter()
        recs = read_all(inputs, skipped=skipped, shard_index=self.shard_index, num_shards=self.num_shards,
                        **read_kw)
        todo = [r for r in recs if r["id"] not in self.done_ids]
        for k, v in {**skipped, "already_done": len(recs) - len(todo)}.items():
            if v:
                self.skip(k, v)
        return recs, todo

    def flush(self) -> None:
        for f in self._files.values():
            f.flush()
            if f is not sys.stdout:
                os.fsync(f.fileno())
        if self.to_stdout:
            sys.stdout.flush()
        self._pending = 0

    # -- finishing
    def summary(self) -> Summary:
        counts = dict(self.counts)
        if self.resumed:
            counts["resumed"] = self.resumed
        outputs = [] if self.to_stdout else [str(self.path)]
        return Summary(self.stage, counts, dict(self.skipped), time.time() - self._t0, outputs, dict(self.metrics))

    def _write_manifest(self, done: bool) -> None:
        man = {"stage": self.stage, "config_hash": self.hash, "inputs": self.inputs,
               "shard_index": self.shard_index, "num_shards": self.num_shards,
               "counts": dict(self.counts), "skipped": dict(self.skipped), "done": done,
               "gramr2_version": __version__}
        _atomic_write(self.path / self._meta_name("manifest"), json.dumps(man, indent=2))

    def close(self, done: bool) -> None:
        self.flush()
        for f in self._files.values():
            if f is not sys.stdout:
                f.close()
        self._files.clear()
        if not self.to_stdout:
            if done:
                _atomic_write(self.path / self._meta_name("summary"), json.dumps(self.summary().to_dict(), indent=2))
            self._write_manifest(done=done)


class open_output:
    """Context manager: `with shards.open_output(out, stage=..., config=...) as out: ...`.

    On normal exit the manifest gets `done: true` and `summary.json` is written; on an exception (or Ctrl-C)
    everything written so far is flushed and the manifest stays `done: false`, so a rerun resumes.
    """

    def __init__(self, path: Path | str, *, stage: str, config: Any, inputs: list | None = None,
                 overwrite: bool = False, shard_index: int | None = None, num_shards: int | None = None,
                 provenance: dict | None = None, batch_size: int = 64):
        if num_shards is not None and num_shards < 1:
            raise GramrError(f"--num-shards must be >= 1, got {num_shards}")
        if shard_index is not None and not (0 <= shard_index < (num_shards or 1)):
            raise GramrError(f"--shard-index must be in [0, {num_shards or 1}), got {shard_index}")
        self.out = Output(path, stage, config, inputs or [], overwrite, shard_index, num_shards, provenance,
                          batch_size)

    def __enter__(self) -> Output:
        return self.out

    def __exit__(self, exc_type, exc, tb) -> None:
        self.out.close(done=exc_type is None)


def is_done(path: Path | str) -> bool:
    """True when `path` holds a finished stage output: its manifest says done, or, for a `--num-shards n` run,
    all n shard manifests do."""
    path = Path(path)
    mans = [path / "manifest.json"] if (path / "manifest.json").exists() else sorted(path.glob("manifest-*-of-*.json"))
    try:
        docs = [json.loads(m.read_text()) for m in mans]
    except (OSError, json.JSONDecodeError):
        return False
    if not docs or not all(d.get("done") for d in docs):
        return False
    return len(docs) == docs[0].get("num_shards", 1)


def write_records(path: Path | str, recs: Iterable[dict], *, stage: str, config: Any, overwrite: bool = False,
                  inputs: list | None = None, metrics: dict | None = None) -> Summary:
    """Write an in-memory list of records as a finished one-part shard directory (merge, split, synth)."""
    with open_output(path, stage=stage, config=config, overwrite=overwrite, inputs=inputs) as out:
        for r in recs:
            if r["id"] in out.done_ids:
                out.skip("already_done")
                continue
            out.write(r)
        out.metrics.update(metrics or {})
    return out.summary()
