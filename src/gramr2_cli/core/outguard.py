"""The output guard (ours, issue 27): one writer per output, and no output on top of one of its inputs.

Every command opens what it writes through these two functions (`shards.Output` for record shards,
`train/core.py` for model directories, `formats/exporters.py` for exported files), before it deletes, truncates
or writes anything:

- `check_not_input(output, inputs)` refuses an output that is one of the inputs or a directory holding one,
  whatever the flags: `--overwrite` would delete the input before it is read, and a resume would cut its last line.
- `lock(directory)` takes `<directory>/.gramr2.lock` (one per shard of a `--num-shards n` run:
  `.gramr2-<i>-of-<n>.lock`) with an exclusive `flock` and writes the holder's pid, host, start time and command
  into it. A second writer stops at once with one line naming the first. The kernel drops a `flock` when its
  process dies (even by SIGKILL), so a lock file left by a dead run is stale by construction: the next run takes
  it over without any pid guessing. (NFS: Linux maps `flock` to POSIX locks, which NFS servers honour.)
  `release()` removes the file. The lock is not inherited by programs the writer starts (close-on-exec).

A stage runner calls `check_not_input`, then `lock`, then reads/clears the directory (`clear` keeps the locks),
and `release()`s when it closes the output.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from .errors import GramrError

LOCK_GLOB = ".gramr2*.lock"


def lock_name(shard_index: int | None = None, num_shards: int | None = None) -> str:
    """`.gramr2.lock`, or for shard i of a `--num-shards n` run (n > 1) `.gramr2-<i>-of-<n>.lock`."""
    if not num_shards or num_shards == 1:
        return ".gramr2.lock"
    return f".gramr2-{shard_index or 0:05d}-of-{num_shards:05d}.lock"


def is_lock(path: Path) -> bool:
    return path.match(LOCK_GLOB)


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_not_input(output: Path | str, inputs: list) -> None:
    """Raise GramrError when `output` (resolved, symlinks followed) is one of `inputs` or a directory that holds
    one. `-` on either side is a stream, never a path."""
    if str(output) == "-":
        return
    out = Path(output).resolve()
    for inp in inputs:
        if str(inp) == "-":
            continue
        src = Path(inp).resolve()
        if _inside(src, out):
            what = "is" if src == out else "holds"
            raise GramrError(f"{output}: the output {what} an input ({inp}); a command never writes over its input",
                             hint="choose another -o")


class Lock:
    """A held output lock (see the module docstring). `release()` is idempotent."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)     # before the unlock: a waiter then finds the file gone and retries
        finally:
            os.close(self.fd)                     # drops the flock
            self.fd = None

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(path: Path) -> str:
    """The first writer, as its lock file tells it: `pid 123 on host, since 12:00:01 UTC: gramr2 self-label ...`."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another process (it has not written its pid yet)"
    cmd = str(info.get("command", ""))[:200]
    return f"pid {info['pid']} on {info.get('host', '?')}, since {info.get('started', '?')}: {cmd}"


def lock(directory: Path | str, name: str = ".gramr2.lock") -> Lock:
    """Create `directory` if needed and take its output lock `name`. Raises GramrError, naming the holder, when
    another process (or another output of this one) holds it."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise GramrError(f"{directory}: output exists and is not a directory") from None
    path = directory / name
    for _ in range(10):     # the file can be released (unlinked) between our open and our flock: open it again
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise GramrError(f"{directory}: another gramr2 is writing this output ({_holder(path)})",
                             hint="wait for it to finish or stop it; a lock whose process died is taken over "
                                  "by the next run") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    else:
        raise GramrError(f"{path}: could not take the output lock (it keeps being replaced)")
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(info).encode("utf-8"))
    return Lock(path, fd)


def entries(directory: Path) -> list[Path]:
    """What `directory` holds, its lock files left out (a directory holding only locks is empty)."""
    return [p for p in directory.iterdir() if not is_lock(p)]


def clear(directory: Path) -> None:
    """Delete everything in `directory` except its lock files (`--overwrite`, with the lock held)."""
    for p in entries(directory):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
