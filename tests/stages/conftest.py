"""Fixtures shared by several stage test modules."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def trl_server(tiny_model):
    """ONE `gramr2 serve` on the tiny model (round-robin, verdict-only; its batcher waits up to 1 s for company,
    so concurrent requests share engine calls) for the TRL tests through a server (test_trl_grpo.py,
    test_trl_async_dpo.py). Starting one costs an interpreter's imports and a model load (~10 s), so those tests
    share it, in the xdist group `trl_server` (one worker); they read its /health counters as before/after
    differences."""
    from test_serve import free_socket, wait_healthy
    from test_trl_grpo import SRC
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([sys.executable, "-c", "from gramr2_cli.cli import main; main()", "serve",
                             "--model", str(tiny_model), "--port", str(port), "-s", "generate.engine=hf",
                             "-s", "generate.verdict_only=true", "-s", "serve.pairing=round-robin",
                             "-s", "serve.max_wait_ms=1000"],
                            env=dict(os.environ, PYTHONPATH=SRC), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, 600)
        yield base
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
