"""Run gramr2 as a real subprocess (or in this process), interrupt it mid-stage, and read back what it wrote."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "GRAMR2_THREADS": "1",
       "PYTHONUNBUFFERED": "1"}


def sigint_as_in_a_terminal() -> None:
    """`preexec_fn` for a child the test interrupts with SIGINT: Ctrl-C's default action, as in a terminal. A test
    run started in the background (`make test &`, `nohup`) inherits SIGINT ignored, and Python then keeps it
    ignored, so the child would run to the end (measured: the interrupt tests failed only when started so)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)   # exec keeps SIG_IGN, resets the rest


def gramr2(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "gramr2_cli.cli", *map(str, args)], env=ENV, capture_output=True,
                       text=True, timeout=timeout, check=False)
    if check and p.returncode != 0:
        raise AssertionError(f"gramr2 {' '.join(map(str, args))} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return p


def gramr2_here(*args: str) -> None:
    """`gramr2 args` in this process (typer's CliRunner): the same command without the seconds a fresh
    interpreter spends importing torch and transformers. Raises AssertionError when it exits non-zero."""
    from typer.testing import CliRunner

    from gramr2_cli.cli import app
    r = CliRunner().invoke(app, [str(a) for a in args])
    if r.exit_code != 0:
        raise AssertionError(f"gramr2 {' '.join(map(str, args))} exited {r.exit_code}:\n{r.stderr[-3000:]}")


def lines_in(out: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in out.glob("**/part-*.jsonl")) if out.exists() else 0


def interrupt(args: list[str], out: Path, min_lines: int, sig: int, timeout: float = 300) -> tuple[int, str, int]:
    """Start `gramr2 args`, wait until `out` holds >= min_lines record lines, send `sig`; return
    (exit code, stderr, lines seen when the signal was sent). Fails if the run ends before that point."""
    p = subprocess.Popen([sys.executable, "-m", "gramr2_cli.cli", *map(str, args)], env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         preexec_fn=sigint_as_in_a_terminal)
    t0 = time.time()
    while lines_in(out) < min_lines:
        if p.poll() is not None:
            raise AssertionError(f"run finished before it could be interrupted: {p.stderr.read()[-2000:]}")
        if time.time() - t0 > timeout:
            p.kill()
            raise AssertionError("timed out waiting for output lines")
        time.sleep(0.05)
    seen = lines_in(out)
    p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    return p.returncode, err, seen


def records(out: Path, part: str = "") -> list[dict]:
    """Records of a shard dir (main part, or `part` subdir), provenance dropped, in file order."""
    recs = []
    for f in sorted((out / part if part else out).glob("part-*.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            r.get("meta", {}).pop("provenance", None)
            recs.append(r)
    return recs


def digest(out: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(out.glob("**/part-*.jsonl")):
        h.update(f.relative_to(out).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def one_error_line(r, *needles: str) -> str:
    """The single `error:` line of a CliRunner result that exited 1 without a traceback; each needle is in it."""
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.output
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]
