"""Output directories on disk (DESIGN §3): the one atomic write, the one manifest reader, finished-or-not.

Every stage output (record shards from `shards.Output`, model directories from `train/core.py`, the summaries
of `synth` and `self-train`) writes its small JSON/YAML files through `atomic_write` (a per-process `*.tmp`,
then a rename), so a kill never leaves half a manifest. A directory's manifests are `manifest.json`, or one
`manifest-<i>-of-<n>.json` per shard of a `--num-shards n` run; `manifests()` reads them all, and `is_done()` /
`unfinished()` say whether the output is complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from .errors import GramrError


@contextmanager
def atomic_open(path: Path | str) -> Iterator[TextIO]:
    """A text file for writing `path` through `<path>.<pid>.tmp` and a rename when the block ends without an
    exception (per process: shard processes share a directory); on an exception the tmp file is removed.
    Readers see the old file or the new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            yield f
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def atomic_write(path: Path | str, text: str) -> None:
    """Write `text` to `path` atomically (`atomic_open`)."""
    with atomic_open(path) as f:
        f.write(text)


def write_json(path: Path | str, obj: dict) -> None:
    atomic_write(path, json.dumps(obj, indent=2))


def write_report(output: Path, config: dict, models: dict, markdown: str,
                 plot: tuple[str, Callable[[dict, Path], None]] | None = None) -> list[str]:
    """A stage report: report.json ({config, models}), report.md and, with `plot` = (file name, draw(models,
    path)), a chart; each written atomically. Returns the paths written (evaluate, probe)."""
    write_json(output / "report.json", {"config": config, "models": models})
    atomic_write(output / "report.md", markdown)
    outs = [str(output / "report.md"), str(output / "report.json")]
    if plot:
        name, draw = plot
        draw(models, output / name)
        outs.append(str(output / name))
    return outs


def meta_name(base: str, shard_index: int | None = None, num_shards: int | None = None) -> str:
    """`<base>.json`, or for shard i of a `--num-shards n` run (n > 1) `<base>-<i>-of-<n>.json` (5 digits)."""
    if not num_shards or num_shards == 1:
        return f"{base}.json"
    return f"{base}-{shard_index or 0:05d}-of-{num_shards:05d}.json"


# the manifest fields gramr2 reads back, and the types it wrote them with (anything else is a corrupt manifest)
MANIFEST_TYPES = {"stage": str, "config_hash": str, "inputs": list, "inputs_fingerprint": str, "shard_index": int,
                  "num_shards": int, "counts": dict, "skipped": dict, "done": bool, "kind": str}


def read_manifest(path: Path) -> dict:
    """One manifest file as a dict. Raises GramrError for a corrupt one: unparseable, not an object, or a field
    of `MANIFEST_TYPES` of another type (null allowed), negative, or an `inputs` entry that is not a string."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise GramrError(f"{path}: corrupt manifest", hint="use --overwrite to start again") from None
    if not isinstance(doc, dict):
        raise GramrError(f"{path}: corrupt manifest (not a JSON object)", hint="use --overwrite to start again")
    for key, tp in MANIFEST_TYPES.items():
        v = doc.get(key)
        bad = v is not None and (not isinstance(v, tp) or (tp is int and (isinstance(v, bool) or v < 0))
                                 or (key == "inputs" and not all(isinstance(x, str) for x in v)))
        if bad:
            raise GramrError(f"{path}: corrupt manifest ('{key}' must be {tp.__name__}, got {str(v)[:40]!r})",
                             hint="use --overwrite to start again")
    return doc


def manifests(d: Path | str) -> dict[str, dict]:
    """{file name: manifest} of every manifest in directory `d` (`manifest.json` and the per-shard ones);
    {} when there is none. Raises GramrError for a corrupt one."""
    d = Path(d)
    if not d.is_dir():
        return {}
    files = [d / "manifest.json"] if (d / "manifest.json").exists() else []
    files += sorted(d.glob("manifest-*-of-*.json"))
    return {f.name: read_manifest(f) for f in files}


def unfinished(d: Path | str) -> str | None:
    """Why the stage output `d` is not complete ("not finished (done: false)", "3 of 4 shards finished"),
    or None when it is complete or is no stage output at all (no manifest: a plain data directory)."""
    try:
        docs = list(manifests(d).values())
    except GramrError as e:
        return e.message
    if not docs:
        return None
    n = docs[0].get("num_shards", 1) or 1
    if len(docs) == 1 and n == 1:
        return None if docs[0].get("done") else "not finished (done: false)"
    done = sum(1 for x in docs if x.get("done"))
    return None if done == n == len(docs) else f"{done} of {n} shards finished"


def is_done(path: Path | str) -> bool:
    """True when `path` holds a finished stage output: its manifest says done, or, for a `--num-shards n` run,
    all n shard manifests do."""
    return bool(manifests_ok(path)) and unfinished(path) is None


def manifests_ok(path: Path | str) -> dict[str, dict]:
    """`manifests(path)`, or {} when one is corrupt (for yes/no questions such as `is_done`)."""
    try:
        return manifests(path)
    except GramrError:
        return {}


def shard_done(d: Path | str, shard_index: int | None = None, num_shards: int | None = None) -> bool:
    """True when this process's part of output `d` is finished: `manifest.json`, or for one shard of a
    `--num-shards n` run its own `manifest-<i>-of-<n>.json`, says done."""
    f = Path(d) / meta_name("manifest", shard_index, num_shards)
    try:
        return f.exists() and bool(read_manifest(f).get("done"))
    except (OSError, GramrError):
        return False
