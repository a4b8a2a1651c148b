"""Sharded record I/O (DESIGN §3): append-only resumable output, manifests; reading records is `readers`.

Writing: `open_output()` gives an `Output` whose part file is
append-only and flushed per batch; rerunning on the same directory skips ids already written and drops a
truncated last line left by a kill. `manifest.json`/`summary.json` are written atomically (`outdir`), and the
manifest's `done: true` comes last.

What a rerun may resume is checked against the manifests already in the directory: the same stage and config
hash, the same `--num-shards`, and the same inputs (`input_fingerprint`: their paths and sizes). With
`--num-shards n > 1`, `--overwrite` replaces only this shard's own files; the other shards' output stays.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import __version__
from . import outdir, outguard
from .errors import GramrError
from .readers import input_fingerprint, read_all

# ---------------------------------------------------------------- writing

# How to reach the endpoints, not what they compute (issue 27 item 9): left out of the hash, so replacing a dead
# endpoint or raising `retries` / `request_timeout` resumes an output instead of refusing it. Every other key of
# the resolved config (config.yaml) is hashed.
UNHASHED = {"generate": ("endpoints", "max_concurrency", "request_timeout", "retries")}


def _hash(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:12]


def config_hash(config: Any) -> str:
    """sha256 (first 12 hex) of the resolved config, as canonical JSON, without the `UNHASHED` connection
    settings."""
    if isinstance(config, dict):
        config = {k: ({kk: vv for kk, vv in v.items() if kk not in UNHASHED[k]}
                      if k in UNHASHED and isinstance(v, dict) else v) for k, v in config.items()}
    return _hash(config)


def legacy_config_hash(config: Any) -> str:
    """The hash earlier gramr2 wrote (every key hashed): an output written before `UNHASHED` still resumes."""
    return _hash(config)


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
    for i, line in enumerate(data.splitlines(), 1):
        if line.strip():
            try:
                rid = json.loads(line)["id"]       # bytes: json detects the encoding, and bad UTF-8 is a ValueError
            except (ValueError, KeyError, TypeError, IndexError, RecursionError):
                rid = None                         # not JSON, not UTF-8, not an object, or no id
            if not isinstance(rid, str):
                raise GramrError(f"{path} line {i}: corrupt line in an existing output (not a record with an id)",
                                 hint="delete that line or the file, or use --overwrite")
            ids.add(rid)
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
        self.fingerprint = input_fingerprint(inputs)
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
        self.created = False
        self.lock: outguard.Lock | None = None
        if not self.to_stdout:
            outguard.check_not_input(self.path, inputs)
            if self.path.exists() and not self.path.is_dir():
                raise GramrError(f"{self.path}: output exists and is not a directory")
            self.created = not self.path.exists()
            self.lock = outguard.lock(self.path, outguard.lock_name(shard_index, num_shards))
            try:
                self._prepare(overwrite)
            except BaseException:
                self._unlock()
                raise

    # -- setup
    def part_path(self, part: str | None = None) -> Path:
        name = f"part-{self.shard_index:05d}-of-{self.num_shards:05d}.jsonl"
        return self.path / part / name if part else self.path / name

    def _meta_name(self, base: str) -> str:
        """`manifest.json`, or one manifest per shard when several processes share the directory."""
        return outdir.meta_name(base, self.shard_index, self.num_shards)

    def _unlock(self) -> None:
        """Release the output lock; a directory this run created only to hold it is removed again."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None
            if self.created and self.path.is_dir() and not any(self.path.iterdir()):
                self.path.rmdir()

    def _prepare(self, overwrite: bool) -> None:
        """With the lock held: check what the directory holds, clear it on `overwrite`, recover its parts."""
        if overwrite and outguard.entries(self.path):
            if self.num_shards == 1:
                outguard.clear(self.path)
            else:   # other shards of this run may have finished or be running: remove only our own files
                self._check_sharding(outdir.manifests(self.path))
                self._remove_own_files()
        existing = outdir.manifests(self.path)
        if not existing and self.num_shards == 1 and outguard.entries(self.path):
            raise GramrError(f"{self.path}: directory exists, is not empty and has no manifest.json",
                             hint="use --overwrite to replace it, or choose another -o")
        self._check_sharding(existing)
        for old in existing.values():
            self._check_resumable(old, overwrite)
        for part in self._existing_parts():
            ids = _recover_part(self.part_path(part))
            self.done_ids |= ids
            self.resumed += len(ids)
        outdir.atomic_write(self.path / "config.yaml",
                            yaml.safe_dump(self.config, sort_keys=False, allow_unicode=True))
        # (every shard process writes the same resolved config: identical bytes, so the last rename is harmless)
        self._write_manifest(done=False)

    def _check_sharding(self, existing: dict[str, dict]) -> None:
        """Refuse a directory written with another `--num-shards`: resuming it would redo every record."""
        for name, old in existing.items():
            n = old.get("num_shards", 1) or 1
            if n != self.num_shards or name != outdir.meta_name("manifest", old.get("shard_index"), n):
                raise GramrError(f"{self.path}: holds a --num-shards {n} run; this one is --num-shards "
                                 f"{self.num_shards}",
                                 hint="use the same --num-shards, or another -o (or delete the directory)")

    def _check_resumable(self, old: dict, overwrite: bool) -> None:
        """Refuse to resume (or, sharded, to join) output of another stage, config or input set. A manifest
        without a fingerprint, from an older gramr2, is only checked for stage and config. After a sharded
        `--overwrite` only the other shards' manifests are left, and they must match too: never mix runs."""
        hint = ("with --num-shards > 1, --overwrite replaces only this shard's files: delete the directory to "
                "start every shard again" if overwrite else "use --overwrite to replace it, or choose another -o")
        if old.get("stage") != self.stage or old.get("config_hash") not in (self.hash,
                                                                             legacy_config_hash(self.config)):
            raise GramrError(
                f"{self.path}: holds output of '{old.get('stage')}' with a different config "
                f"(hash {old.get('config_hash')} != {self.hash})", hint=hint)
        fp = old.get("inputs_fingerprint")
        if fp is not None and fp != self.fingerprint:
            raise GramrError(f"{self.path}: holds output of other inputs ({', '.join(old.get('inputs') or [])}, "
                             f"fingerprint {fp} != {self.fingerprint})", hint=hint)

    def _own_files(self) -> list[Path]:
        """This shard's part files (top level and in part subdirectories), manifest and summary."""
        tail = f"-{self.shard_index:05d}-of-{self.num_shards:05d}"
        files = [self.path / self._meta_name("manifest"), self.path / self._meta_name("summary"), self.part_path()]
        files += [self.part_path(d.name) for d in self.path.iterdir() if d.is_dir()] if self.path.is_dir() else []
        return [f for f in files if f.exists() and (self.num_shards == 1 or tail in f.name)]

    def _remove_own_files(self) -> None:
        for f in self._own_files():
            f.unlink()

    def discard(self) -> None:
        """Remove what this run wrote into an output directory it created (a failed import): this shard's
        files, then the directory itself when no other shard wrote into it (the lock is released last)."""
        self._remove_own_files()
        if outdir.manifests_ok(self.path):
            return
        for d in sorted((p for p in self.path.rglob("*") if p.is_dir()), reverse=True):
            if not any(d.iterdir()):
                d.rmdir()
        (self.path / "config.yaml").unlink(missing_ok=True)
        self._unlock()

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
            try:
                f.flush()
                if f is not sys.stdout:
                    os.fsync(f.fileno())
            except OSError as e:   # a full disk: name the part file (a write error carries no file name)
                if e.errno in (errno.ENOSPC, errno.EDQUOT) and f is not sys.stdout and e.filename is None:
                    raise OSError(e.errno, e.strerror, f.name) from None
                raise
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
               "inputs_fingerprint": self.fingerprint, "shard_index": self.shard_index,
               "num_shards": self.num_shards,
               "counts": dict(self.counts), "skipped": dict(self.skipped), "done": done,
               "gramr2_version": __version__}
        outdir.write_json(self.path / self._meta_name("manifest"), man)

    def close(self, done: bool) -> None:
        self.flush()
        for f in self._files.values():
            if f is not sys.stdout:
                f.close()
        self._files.clear()
        if not self.to_stdout:
            if done:
                outdir.write_json(self.path / self._meta_name("summary"), self.summary().to_dict())
            self._write_manifest(done=done)


class open_output:
    """Context manager: `with shards.open_output(out, stage=..., config=...) as out: ...`.

    On normal exit the manifest gets `done: true` and `summary.json` is written; on an exception (or Ctrl-C)
    everything written so far is flushed and the manifest stays `done: false`, so a rerun resumes.
    With `discard_on_error`, a GramrError (bad input) instead removes what this run wrote into an output
    directory it created: nothing half-written is left for a rerun to resume (`data import`).
    """

    def __init__(self, path: Path | str, *, stage: str, config: Any, inputs: list | None = None,
                 overwrite: bool = False, shard_index: int | None = None, num_shards: int | None = None,
                 provenance: dict | None = None, batch_size: int = 64, discard_on_error: bool = False):
        self.discard_on_error = discard_on_error
        if num_shards is not None and num_shards < 1:
            raise GramrError(f"--num-shards must be >= 1, got {num_shards}")
        if shard_index is not None and not (0 <= shard_index < (num_shards or 1)):
            raise GramrError(f"--shard-index must be in [0, {num_shards or 1}), got {shard_index}")
        self.out = Output(path, stage, config, inputs or [], overwrite, shard_index, num_shards, provenance,
                          batch_size)

    def __enter__(self) -> Output:
        return self.out

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.out.close(done=exc_type is None)
            if (self.discard_on_error and exc_type is not None and issubclass(exc_type, GramrError)
                    and not self.out.to_stdout and self.out.created):
                self.out.discard()
        finally:
            self.out._unlock()


is_done = outdir.is_done   # (kept here: stages ask `shards.is_done(output)`)


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
