"""Issue 8 item 1: the interruption matrix. Every record-writing stage is killed (SIGKILL) and interrupted
(SIGINT; data-import also SIGTERM) in a real subprocess after some records are on disk, rerun with the same
command, and compared with an uninterrupted run: same ids, same content (provenance dropped), in every part
(main, skipped/, rejected/, predictions/<model>/), nothing lost, nothing duplicated. SIGINT exits 130 and SIGTERM
143, with the resume hint.

Only the interrupted run needs a real process (a signal, a torn write); the rerun and the uninterrupted
reference run the same command in this process (CliRunner), which spares two interpreter starts (~10 s of
imports each) per test. A case's two signals share one xdist worker, so its reference is made once.

The self-label and data-import rows (both signals) run in `make test`; the others are `slow` (prove, rank,
evaluate, filter: ~2 min more on 2 shared cores).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from .helpers import gramr2_here, interrupt, lines_in, records

TINY_GEN = ["--engine", "hf", "--no-progress", "-s", "generate.max_new_tokens=6", "-s", "generate.dtype=float32",
            "--seed", "3"]


def parts(out: Path) -> dict[str, list[dict]]:
    """Every part of a shard tree (relative dir → records in file order), provenance dropped."""
    dirs = sorted({f.parent for f in out.glob("**/part-*.jsonl")})
    return {d.relative_to(out).as_posix(): records(d) for d in dirs}


@dataclass
class Case:
    name: str
    args: Callable[[Path, Path, Path], list[str]]   # (inputs dir, model, output) -> gramr2 args
    min_lines: int                                  # lines on disk before the signal
    total: int                                      # lines of a finished run (all parts)
    slow: bool = True
    signals: tuple[str, ...] = ("SIGKILL", "SIGINT")


def _synth_pairs(d: Path, n: int) -> Path:
    from gramr2_cli.stages import synth
    p = d / f"labeled-{n}.jsonl"
    if not p.exists():
        recs = synth.generate(synth.SynthConfig(n=n), seed=1)["labeled"]
        p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return p


def _import_src(d: Path, n: int = 20000) -> Path:
    p = d / "pcr.jsonl"
    if not p.exists():
        p.write_text("".join(json.dumps({"prompt": f"question {i}: what is {i} + {i}?", "chosen": f"{2 * i}",
                                         "rejected": f"{2 * i + 1}", "category": "math"}) + "\n"
                             for i in range(n)))
    return p


def _judged(d: Path, n: int = 60000) -> Path:
    """n synthetic self-labelled records (judgments and rationales of every shape the rules look at)."""
    p = d / f"judged-{n}.jsonl"
    if p.exists():
        return p
    rows = []
    for i in range(n):
        lab = "AB"[i % 2] if i % 7 else None
        agree = (i % 5) / 4
        rat = None if i % 11 == 0 else (f"Feedback: a{i} is fine.\n\nComparison: b{i} is worse.\n\n"
                                        f"Conclusion: Response {lab or 'A'} is better.")
        rows.append({"prompt": f"q{i}", "response_a": f"a{i}", "response_b": f"b{i}", "label": lab,
                     "rationale": rat, "meta": {"gold_label": "AB"[(i // 3) % 2], "judgment": {
                         "agreement": agree, "confidence": 0.5 + agree / 2, "orders": "ab",
                         "order_consistent": None, "votes": {"A": 2, "B": 1, "null": 0}}}})
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


CASES = [
    Case("self-label", lambda d, m, o: ["self-label", _synth_pairs(d, 40), "-o", o, "--model", m, "--samples", "2",
                                        "--orders", "both", "-s", "generate.batch_size=4", "-s",
                                        "generate.temperature=1.0", *TINY_GEN], 4, 40, slow=False),
    Case("prove", lambda d, m, o: ["prove", _synth_pairs(d, 40), "-o", o, "--prover", m, "-k", "2",
                                   "-s", "prove.max_new_tokens=12",
                                   "-s", "generate.batch_size=2", *TINY_GEN], 4, 40),
    Case("rank-pairs", lambda d, m, o: ["rank", "pairs", _synth_pairs(d, 40), "-o", o, "--model", m,
                                        "--orders", "both", "-s", "rank.batch_size=2", *TINY_GEN], 4, 40),
    Case("evaluate", lambda d, m, o: ["evaluate", _synth_pairs(d, 40), "-o", o, "--model", m,
                                      "-s", "evaluate.batch_size=2", "-s", "evaluate.plot=false", *TINY_GEN],
         4, 40),
    Case("data-import", lambda d, m, o: ["data", "import", _import_src(d), "-o", o, "--order", "random",
                                         "--seed", "7", "--batch-size", "20"], 200, 20000, slow=False,
         signals=("SIGKILL", "SIGINT", "SIGTERM")),
    Case("filter", lambda d, m, o: ["filter", _judged(d), "-o", o, "-s", "filter.balance_ab=false"], 2000, 60000),
]

SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


@pytest.fixture(scope="module")
def inputs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("inputs")


@pytest.fixture(scope="module")
def reference(inputs_dir, tiny_model, tmp_path_factory):
    """Uninterrupted runs, one per stage, made on first use."""
    done: dict[str, dict[str, list[dict]]] = {}

    def get(case: Case) -> dict[str, list[dict]]:
        if case.name not in done:
            out = tmp_path_factory.mktemp(f"ref-{case.name}") / "out"
            gramr2_here(*case.args(inputs_dir, tiny_model, out))
            done[case.name] = parts(out)
            assert sum(map(len, done[case.name].values())) == case.total
        return done[case.name]
    return get


def _params():
    for c in CASES:
        for s in c.signals:
            marks = [pytest.mark.xdist_group(f"interrupt-{c.name}")] + ([pytest.mark.slow] if c.slow else [])
            yield pytest.param(c, s, id=f"{c.name}-{s}", marks=marks)


@pytest.mark.parametrize("case,sig", list(_params()))
def test_interrupt_then_rerun_equals_uninterrupted(case, sig, inputs_dir, tiny_model, reference, tmp_path):
    out = tmp_path / "out"
    args = case.args(inputs_dir, tiny_model, out)
    code, err, seen = interrupt(args, out, case.min_lines, SIGNALS[sig])
    left = lines_in(out)
    assert case.min_lines <= seen <= left < case.total, (seen, left)      # really stopped in the middle
    man = out / ("predictions" if case.name == "evaluate" else ".")
    man = next(man.glob("*/manifest.json")) if case.name == "evaluate" else out / "manifest.json"
    assert json.loads(man.read_text())["done"] is False
    if sig == "SIGINT":
        assert code == 130, err[-2000:]
        assert "interrupted; rerun the same command to resume" in err
        assert "Traceback" not in err
    elif sig == "SIGTERM":                          # `kill`, `timeout`, a scheduler's cancel: like Ctrl-C
        assert code == 143, err[-2000:]
        assert "terminated (SIGTERM); rerun the same command to resume" in err
        assert "Traceback" not in err
    else:
        assert code == -signal.SIGKILL

    complete = sum(p.read_bytes().count(b"\n") for p in out.glob("**/part-*.jsonl"))   # a torn last line is redone
    gramr2_here(*args)                              # the same command again resumes
    got, want = parts(out), reference(case)
    assert sorted(got) == sorted(want)
    for part in want:
        ids = [r["id"] for r in got[part]]
        assert len(ids) == len(set(ids)), f"{part}: duplicated records"
        assert ids == [r["id"] for r in want[part]], f"{part}: records lost or reordered"
        assert got[part] == want[part], f"{part}: records differ from the uninterrupted run"
    assert sum(map(len, got.values())) == case.total
    assert json.loads(man.read_text())["done"] is True
    if case.name == "data-import":   # the rerun reports what it resumed (moved here from test_data_cli's kill test)
        counts = json.loads((out / "summary.json").read_text())["counts"]
        assert counts["resumed"] == complete and counts["out"] == case.total - complete
