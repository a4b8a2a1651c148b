"""An interrupted `make demo` / `make robustness` keeps the manifest its killed step wrote, so a rerun resumes it.

GNU make deletes the target of a recipe it interrupts (Ctrl-C, SIGTERM) unless the target is listed in .PRECIOUS by
name (a `%` pattern there covers implicit rules only). The targets here are the steps' manifest.json files: deleted,
they leave an output directory with checkpoints but no manifest, which the next run refuses to resume ("exists,
is not empty and has no manifest.json"). Checked two ways: make's own database marks every step's target precious,
and one training step, run by a stand-in for `gramr2` that writes an unfinished manifest and sleeps, keeps that
manifest when make is sent SIGTERM mid-step.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FAKE = """#!/bin/sh
# stand-in for gramr2: writes an unfinished manifest into the -o directory, then works for a while
while [ $# -gt 0 ]; do if [ "$1" = "-o" ]; then out="$2"; fi; shift; done
for d in "$out" "$out/test"; do   # data synth's target is the test split's manifest
  mkdir -p "$d" && echo '{"done": false}' > "$d/manifest.json" && echo '{}' > "$d/summary.json"
done
exec sleep 30
"""


def _targets(mk: str, var: str) -> list[str]:
    """Every step target of `mk` (rules on `$(VAR)/…`) in the file's order (each after its prerequisites)."""
    text = (REPO / mk).read_text()
    return list(dict.fromkeys(re.findall(r"^\$\(" + var + r"\)/([^:\s]+):", text, re.M)))


def _finished_but(run: Path, targets: list[str], name: str) -> None:
    """Every step of the pipeline finished (older first) except `name`, so make runs that step only."""
    for i, other in enumerate(t for t in targets if t != name):
        path = run / other
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"done": true}')
        os.utime(path, (1_000_000 + i, 1_000_000 + i))


PIPELINES = [("mk/demo.mk", "DEMO", "DEMO_G", "prover/manifest.json"),
             ("mk/robustness.mk", "ROB", "ROB_G", "rm-base/manifest.json")]


@pytest.mark.parametrize("mk,var,gvar,step", PIPELINES)
def test_every_step_target_is_precious(tmp_path, mk, var, gvar, step):
    """make's own database (`make -p`) marks each step's target precious: none is deleted on an interrupt."""
    targets = _targets(mk, var)
    assert len(targets) >= 7 and step in targets          # the rules above are the pipeline's steps
    db = subprocess.run(["make", "-p", "-q", "-f", mk, "-C", str(REPO), f"{var}={tmp_path}", "PY=true"],
                        capture_output=True, text=True).stdout
    blocks = {line.split(":", 1)[0]: block for line, block in
              ((b.splitlines()[0], b) for b in db.split("\n\n") if b.strip() and not b.startswith("#"))}
    for name in targets:
        block = blocks.get(str(tmp_path / name))
        assert block is not None, f"{mk}: make does not know {name}"
        assert "Precious file" in block, f"{mk}: {name} is not precious: an interrupted make deletes it"


@pytest.mark.parametrize("mk,var,gvar,step", PIPELINES)
def test_a_training_step_interrupted_under_make_keeps_its_manifest(tmp_path, mk, var, gvar, step):
    """SIGTERM to make (and its step) mid-way: the step's unfinished manifest stays, so a rerun resumes it."""
    fake = tmp_path / "fake-gramr2"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    run = tmp_path / "run"
    _finished_but(run, _targets(mk, var), step)
    proc = subprocess.Popen(["make", "-s", "-f", mk, "-C", str(REPO), str(run / step), f"{var}={run}",
                             f"{gvar}={fake}", "PY=true"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 20
    while not (run / step).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (run / step).exists(), f"{step}: the step never started"
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert "Deleting file" not in err, f"{mk}: make deleted {step} when interrupted:\n{err}"
    assert (run / step).read_text().strip() == '{"done": false}'
