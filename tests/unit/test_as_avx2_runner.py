"""benchmarks/as_avx2_runner.py: the quota search finds the CPU share whose matmul speed matches the target."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from as_avx2_runner import calibrate  # noqa: E402


def throttled(full: float):
    """A CPU pair doing `full` GFLOP/s unthrottled, whose speed falls faster than its quota (as measured here:
    0.8 CPUs gave 62 of 226, 1.06 gave 85), and the quotas it was asked for."""
    asked = []

    def measure(cores: float) -> float:
        asked.append(cores)
        return full * (cores / 2.0) ** 1.35
    return measure, asked


def test_finds_the_quota_within_five_percent():
    measure, asked = throttled(226.0)
    cores, g = calibrate(measure, 63.6)
    assert abs(g - 63.6) <= 0.05 * 63.6
    assert abs(cores - 2.0 * (63.6 / 226.0) ** (1 / 1.35)) < 0.05     # the inverse of the model above
    assert asked[0] == 2.0 and len(asked) <= 6


def test_a_cpu_already_slower_than_the_target_runs_uncapped():
    measure, asked = throttled(40.0)
    assert calibrate(measure, 63.6) == (2.0, 40.0)
    assert asked == [2.0]
