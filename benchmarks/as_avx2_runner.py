"""Run a command as on the slowest runner this project has seen: a 2-core AVX2-only CPU ("AMD EPYC", no AVX512 or
AMX, bf16 emulated) whose one core did 31.8 GFLOP/s of fp32 matmul (benchmarks/README.md, "Trainer speed").

A simulation, not that CPU (ours; docs/notes/learnability.md says what it is good for):
- kernels capped to AVX2: `ATEN_CPU_CAPABILITY=avx2` (torch's vectorised ops), `ONEDNN_MAX_CPU_ISA=AVX2`,
  `MKL_ENABLE_INSTRUCTIONS=AVX2` (the matmuls); `GRAMR2_NATIVE_BF16=0`, so `precision: auto` and
  `generate.dtype: auto` resolve to fp32 as they do there;
- the clock: a cgroup CPU quota on the whole process tree, searched so that a 2-thread fp32 matmul runs at
  `--gflops-per-core` × 2 (what the AVX2 runner's two cores do together).
Kernels outside torch/oneDNN/MKL (vLLM's own attention code) keep their AVX512 paths; single-threaded work gets
the quota of both cores. Needs root and a cgroup `cpu` controller (v1 or v2).

    sudo .venv/bin/python benchmarks/as_avx2_runner.py -- bash -c 'make setup && make demo'
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CAPS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "GRAMR2_NATIVE_BF16": "0"}
PERIOD_US = 10_000          # a short period: both threads are throttled together, in small slices
PROBE = ("import torch, json; torch.set_num_threads(2); from gramr2_cli.core.hardware import matmul_gflops; "
         "print(json.dumps([torch.backends.cpu.get_cpu_capability(), matmul_gflops(False, seconds=2.0)]))")


class Cgroup:
    """A `cpu` cgroup made for this run, v1 (`cpu.cfs_quota_us`) or v2 (`cpu.max`)."""

    def __init__(self, name: str):
        v2 = Path("/sys/fs/cgroup/cgroup.controllers")
        if v2.exists() and "cpu" in v2.read_text().split():
            self.path, self.v2 = Path("/sys/fs/cgroup") / name, True
        elif Path("/sys/fs/cgroup/cpu").is_dir():
            self.path, self.v2 = Path("/sys/fs/cgroup/cpu") / name, False
        else:
            sys.exit("error: no cgroup cpu controller here (needs /sys/fs/cgroup/cpu or cgroup v2 with cpu)")
        try:
            self.path.mkdir(exist_ok=True)
        except OSError as e:
            sys.exit(f"error: cannot make the cgroup {self.path} ({e.strerror}); run as root")

    def set_cores(self, cores: float) -> None:
        """Cap the group at `cores` CPUs' worth of time."""
        quota = max(1000, int(cores * PERIOD_US))
        if self.v2:
            (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}\n")
        else:
            (self.path / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
            (self.path / "cpu.cfs_quota_us").write_text(f"{quota}\n")

    def enter(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def remove(self) -> None:
        """Remove the group once its processes have exited (a leftover one is harmless and stays empty)."""
        try:
            self.path.rmdir()
        except OSError:
            pass


def probe(cg: Cgroup, python: str) -> tuple[str, float]:
    """(torch's CPU capability, 2-thread fp32 matmul GFLOP/s) of a child started inside the cgroup, capped."""
    out = subprocess.run([python, "-c", PROBE], env={**os.environ, **CAPS}, capture_output=True, text=True,
                         preexec_fn=lambda: cg.enter(os.getpid()), check=True)
    cap, gflops = json.loads(out.stdout.strip().splitlines()[-1])
    return cap, gflops


def calibrate(measure, target: float, rounds: int = 5) -> tuple[float, float]:
    """(cores, GFLOP/s): the quota (in CPUs) whose 2-thread matmul, `measure(cores)`, comes closest to `target`
    GFLOP/s. Secant steps from a proportional first guess: throttling two threads costs more than the quota alone
    says (here 0.53 of the two cores gave 38% of their speed), so the first guess is too fast."""
    full = measure(2.0)
    if full <= target:
        return 2.0, full
    best = (2.0, full)
    lo, g_lo, cores = 2.0, full, 2.0 * target / full
    for _ in range(rounds):
        g = measure(cores)
        print(f"calibrate: {cores:.2f} CPUs → {g:.1f} GFLOP/s (target {target:.1f})", file=sys.stderr)
        if abs(g - target) < abs(best[1] - target):
            best = (cores, g)
        if abs(g - target) <= 0.05 * target:
            break
        nxt = cores + (target - g) * (lo - cores) / (g_lo - g) if g_lo != g else cores * target / g
        lo, g_lo, cores = cores, g, min(2.0, max(0.1, nxt))
    return best


def measure_in(cg: Cgroup, python: str):
    """`measure(cores)` for `calibrate`: cap `cg` at `cores`, probe it. Exits when torch ignores the AVX2 cap."""
    def measure(cores: float) -> float:
        cg.set_cores(cores)
        cap, gflops = probe(cg, python)
        if cap.upper() != "AVX2":
            sys.exit(f"error: torch still dispatches {cap} with ATEN_CPU_CAPABILITY=avx2")
        return gflops
    return measure


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gflops-per-core", type=float, default=31.8, help="fp32 matmul GFLOP/s of one core to match")
    ap.add_argument("--cores", type=float, default=None, help="skip calibration: cap at this many CPUs' time")
    ap.add_argument("--python", default=sys.executable, help="the Python with torch and gramr2 (calibration)")
    ap.add_argument("--out", default=None, help="write the calibration (JSON) here")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("no command given (put it after --)")
    cg = Cgroup(f"gramr2-avx2-{os.getpid()}")
    if a.cores is not None:
        cg.set_cores(a.cores)
        cores, gflops = a.cores, None
    else:
        cores, gflops = calibrate(measure_in(cg, a.python), 2 * a.gflops_per_core)
        cg.set_cores(cores)
    said = {"cores": round(cores, 3), "matmul_gflops_2_threads": gflops and round(gflops, 1),
            "target_gflops_2_threads": 2 * a.gflops_per_core, "env": CAPS, "command": cmd}
    print("as the AVX2 runner: " + json.dumps(said), file=sys.stderr)
    if a.out:
        Path(a.out).write_text(json.dumps(said, indent=1) + "\n")
    child = subprocess.Popen(cmd, env={**os.environ, **CAPS}, preexec_fn=lambda: cg.enter(os.getpid()))
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:        # Ctrl-C reached the child too (same process group): let it finish
                continue
    finally:
        cg.remove()


if __name__ == "__main__":
    sys.exit(main())
