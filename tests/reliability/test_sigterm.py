"""SIGTERM (`kill`, `timeout`, a scheduler cancelling a job) ends a command like Ctrl-C does: the engines it loaded
are closed (vLLM's engine-core processes stopped, not left as orphans holding the cores or a GPU), exit 143 with
the resume hint. Without the handler the process dies at once and its engine's child processes live on.

The fast test stands a fake engine with a real child process in for vLLM (seconds); the `slow` one runs
`gramr2 self-label` on a real vLLM engine whose core runs in a child process (vLLM's default, kept on GPUs; on
CPU gramr2 runs it in process) and checks that every process it started is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .helpers import ENV, lines_in

SCRIPT = """
import subprocess, sys, time
import typer
from gramr2_cli import engines
from gramr2_cli.commands.common import command

app = typer.Typer()

class ChildEngine:   # what matters of a vLLM engine here: a child process that only close() stops
    def __init__(self):
        self.child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def close(self):
        self.child.terminate()
        self.child.wait()
        engines.forget(self)
        print("closed", flush=True)

@command(app, "run")
def run() -> None:
    eng = ChildEngine()
    engines._LOADED[("fake",)] = eng
    print(eng.child.pid, flush=True)
    time.sleep(600)

@command(app, "other")
def other() -> None:
    pass

app()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_closes_loaded_engines_and_exits_143():
    p = subprocess.Popen([sys.executable, "-c", SCRIPT, "run"], env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    child = None
    try:
        child = int(p.stdout.readline())
        assert _alive(child)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        orphaned = _alive(child)
    finally:
        if p.poll() is None:
            p.kill()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)
    assert p.returncode == 143, err[-2000:]
    assert out == "closed\n"
    assert "terminated (SIGTERM); rerun the same command to resume" in err and "Traceback" not in err
    assert not orphaned


def test_the_handler_is_only_installed_while_a_command_runs():
    from gramr2_cli.commands.common import sigterm_raises
    saved = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with sigterm_raises():
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        signal.signal(signal.SIGTERM, theirs := (lambda s, f: None))   # someone else's (uvicorn's in `serve`) stays
        with sigterm_raises():
            assert signal.getsignal(signal.SIGTERM) is theirs
        assert signal.getsignal(signal.SIGTERM) is theirs
    finally:
        signal.signal(signal.SIGTERM, saved)


@pytest.mark.slow
@pytest.mark.vllm
def test_sigterm_on_a_vllm_stage_leaves_no_process_behind(tiny_model, tiny_pairs, tmp_path):
    import psutil
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "gramr2_cli.cli", "self-label", str(tiny_pairs), "-o", str(out),
                          "--model", str(tiny_model), "--engine", "vllm", "--samples", "4", "--orders", "both",
                          "--no-progress", "-s", "generate.dtype=float32", "-s", "generate.max_new_tokens=64",
                          "-s", "generate.batch_size=1"],
                         env={**ENV, "VLLM_ENABLE_V1_MULTIPROCESSING": "1"},   # the core in a child, as on GPUs
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.time()
        while not lines_in(out) and p.poll() is None and time.time() - t0 < 300:
            time.sleep(0.1)
        assert p.poll() is None, "the run ended before it could be terminated"
        kids = psutil.Process(p.pid).children(recursive=True)
        assert kids, "a vLLM engine runs in child processes"
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143, err[-2000:]
    gone, alive = psutil.wait_procs(kids, timeout=30)
    assert not alive, [(k.pid, k.name()) for k in alive]
