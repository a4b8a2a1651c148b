"""self-label: pseudo-labels, order mapping, gold-label bookkeeping, resume (scripted judge + a real kill)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from scripted_engine import ScriptedEngine

from gramr2_cli import recipe
from gramr2_cli.core import prompts, readers, records
from gramr2_cli.engines import Generation
from gramr2_cli.stages import self_label


def reply(v: str | None, why: str = "checked the sum") -> str:
    if v is None:
        return "I cannot decide."
    return (f"<think>\nFeedback: {why}.\n\nComparison: Response {v} is right.\n\n"
            f"Conclusion: Response {v} is better.\n</think>\n<answer>\n{v}\n</answer>")


class FakeJudge:
    """Scripted judge. `policy(first, second, sample_index)` → verdict for the shown order, or None."""

    context_length = None

    def __init__(self, policy):
        self.tokenizer = SimpleNamespace(chat_template=None)
        self.policy = policy
        self.calls = []

    def generate(self, prompts_, *, n, temperature, max_new_tokens, seed, top_p=1.0, answer_token_probs=False):
        self.calls.append({"n": n, "count": len(prompts_), "temperature": temperature, "seed": seed,
                               "answer_token_probs": answer_token_probs})
        out = []
        for p in prompts_:
            first = p.split("[Response A]\n", 1)[1].split("\n[Response B]", 1)[0]
            second = p.split("[Response B]\n", 1)[1].split("\nReply as", 1)[0]
            gens = []
            for j in range(n):
                v = self.policy(first, second, j)
                probs = None if v is None else ((0.9, 0.1) if v == "A" else (0.2, 0.8))
                gens.append(Generation(reply(v), 20, -5.0, -0.25, ab_probs=probs))
            out.append(gens)
        return out


def correct(first, second, j):   # prefers whichever response says 12, wherever it is shown
    return "A" if "12" in first else "B"


def position_biased(first, second, j):
    return "A"


def write(tmp_path: Path, recs: list[dict]) -> Path:
    p = tmp_path / "in.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return p


def pairs() -> list[dict]:
    # correct answer shown as A in the first pair, as B in the second
    return [records.new_pair("7 + 5?", "It is 12.", "It is 13.", label="A"),
            records.new_pair("6 + 6?", "It is 11.", "It is 12.", meta={"gold_label": "B"})]


def test_orders_both_maps_swapped_verdicts_back(tmp_path):
    inp = write(tmp_path, pairs())
    cfg = recipe.load(None, ["self_label.samples=2", "self_label.orders=both", "self_label.temperature=0.6"])
    eng = FakeJudge(correct)
    s = self_label.run(cfg, [inp], tmp_path / "out", engine=eng, progress=False)
    a, b = readers.read_all([tmp_path / "out"])
    assert (a["label"], b["label"]) == ("A", "B")
    for r in (a, b):
        j = r["meta"]["judgment"]
        assert j["votes"] == {"A": 4 if r is a else 0, "B": 0 if r is a else 4, "null": 0}
        assert j["order_consistent"] is True and j["agreement"] == 1.0 and j["parse_ok"] == 4
        assert [x["order"] for x in j["samples"]] == ["ab", "ab", "ba", "ba"]
        assert j["orders"] == "both" and r["meta"]["prompt_version"] == "gramr2-v1"
    # P(original A better): for `a`, ab samples give P(A)=0.9; in ba the original A is shown second and the
    # judge (voting B there) gives P(second)=0.8 → mean 0.85. For `b`: 0.2 (ab) and P(second)=0.1 (ba) → 0.15.
    assert a["meta"]["judgment"]["p_a"] == pytest.approx(0.85)
    assert b["meta"]["judgment"]["p_a"] == pytest.approx(0.15)
    assert b["meta"]["judgment"]["confidence"] == pytest.approx(0.85)
    # the input label moved to meta.gold_label; an existing gold label is kept as it is
    assert a["meta"]["gold_label"] == "A" and b["meta"]["gold_label"] == "B"
    # the RM's own rationale for the majority label, from an AB-order sample
    assert a["rationale"].endswith("Conclusion: Response A is better.")
    assert b["rationale"].endswith("Conclusion: Response B is better.")
    assert eng.calls[0]["count"] == 4 and eng.calls[0]["n"] == 2 and eng.calls[0]["temperature"] == 0.6
    assert eng.calls[0]["answer_token_probs"] is True
    assert s.counts["label:A"] == 1 and s.counts["label:B"] == 1
    assert s.metrics["precision_vs_gold"] == 1.0 and s.metrics["order_consistency"] == 1.0


def test_position_bias_becomes_a_tie_with_null_label(tmp_path):
    inp = write(tmp_path, pairs()[:1])
    cfg = recipe.load(None, ["self_label.samples=3", "self_label.orders=both"])
    s = self_label.run(cfg, [inp], tmp_path / "out", engine=FakeJudge(position_biased), progress=False)
    (r,) = readers.read_all([tmp_path / "out"])
    j = r["meta"]["judgment"]
    assert r["label"] is None and j["reason"] == "tie" and j["votes"] == {"A": 3, "B": 3, "null": 0}
    assert j["order_consistent"] is False and r["rationale"] is None
    assert s.counts["unlabeled:tie"] == 1


def test_mixed_samples_majority_agreement_and_unparseable(tmp_path):
    script = ["A", "B", None, "A"]
    inp = write(tmp_path, [records.new_pair("q", "x", "y", meta={"gold_label": "B", "src": 1}),
                           records.new_pair("q2", "x", "y")])
    cfg = recipe.load(None, ["self_label.samples=4", "self_label.keep_samples=false"])
    eng = FakeJudge(lambda f, s, j: script[j])
    self_label.run(cfg, [inp], tmp_path / "out", engine=eng, progress=False)
    r, r2 = readers.read_all([tmp_path / "out"])
    j = r["meta"]["judgment"]
    assert r["label"] == "A" and j["votes"] == {"A": 2, "B": 1, "null": 1}
    assert j["agreement"] == 0.5 and j["parse_ok"] == 3 and "samples" not in j
    assert j["confidence"] == pytest.approx(0.9 * 2 / 3 + 0.2 / 3) and j["order_consistent"] is None
    assert r["meta"]["gold_label"] == "B" and r["meta"]["src"] == 1 and "gold_label" not in r2["meta"]
    # no sample kept: the rationale can still come from the samples seen during judging
    assert r["rationale"].startswith("Feedback:")


def test_all_unparseable_gives_null_label_with_reason(tmp_path):
    inp = write(tmp_path, pairs()[:1])
    self_label.run(recipe.load(None, ["self_label.samples=2"]), [inp], tmp_path / "out",
                   engine=FakeJudge(lambda f, s, j: None), progress=False)
    (r,) = readers.read_all([tmp_path / "out"])
    assert r["label"] is None and r["meta"]["judgment"]["reason"] == "unparseable"
    assert r["meta"]["judgment"]["votes"] == {"A": 0, "B": 0, "null": 2}


def test_gold_label_is_never_overwritten(tmp_path):
    rec = records.new_pair("q", "x", "y", label="A", meta={"gold_label": "B"})
    out = self_label.labeled_record(rec, self_label.judge.combine(
        [{"order": "ab", "text": reply("A"), "verdict": "A", "p_a": 0.9}], ("ab",)), recipe.load())
    assert out["meta"]["gold_label"] == "B" and out["meta"]["input_label"] == "A" and out["label"] == "A"


def test_bad_orders_is_a_user_error(tmp_path):
    from gramr2_cli.core.errors import GramrError
    inp = write(tmp_path, pairs())
    with pytest.raises(GramrError, match="orders"):
        self_label.run(recipe.load(None, ["self_label.orders=ba"]), [inp], tmp_path / "o", engine=FakeJudge(correct),
                       progress=False)


def test_verdict_only_judges_once_per_order_with_the_forced_answer(tmp_path):
    """generate.verdict_only: one forced-answer verdict per order (self_label.samples does not apply), read from
    the engine's answer-token probabilities; no generation."""
    inp = write(tmp_path, pairs())
    eng = ScriptedEngine(lambda q, a, b, k: ("A", 0.9) if "12" in a else ("B", 0.1))
    cfg = recipe.load(None, ["generate.verdict_only=true", "self_label.orders=both", "self_label.samples=4"])
    s = self_label.run(cfg, [inp], tmp_path / "o", engine=eng, progress=False)
    out = readers.read_all([tmp_path / "o"])
    assert [r["label"] for r in out] == ["A", "B"] and s.metrics["precision_vs_gold"] == 1.0
    assert len(eng.forced_calls) == 1 and len(eng.calls) == 1 and len(eng.forced_calls[0]) == 4  # 2 pairs × 2 orders
    for r, want in zip(out, ("A", "B")):
        j = r["meta"]["judgment"]
        assert j["votes"] == {"A": 2 if want == "A" else 0, "B": 2 if want == "B" else 0, "null": 0}
        assert [x["order"] for x in j["samples"]] == ["ab", "ba"]
        shown = [want, "B" if want == "A" else "A"]                 # the verdict as shown in each order
        assert [x["text"] for x in j["samples"]] == [prompts.judgment_text(None, v) for v in shown]
        assert j["p_a"] == pytest.approx(0.9 if want == "A" else 0.1)
        assert r["rationale"] is None                               # verdict-only judgments have no rationale


def test_cli_verdict_only_on_the_tiny_model(tmp_path, tiny_model):
    """`gramr2 self-label -s generate.verdict_only=true`: P(A) at the forced answer of each order, as the
    engine's `answer_probs` gives it; 2 samples per pair (one per order) although --samples is 3."""
    from gramr2_cli.engines.hf import HFEngine
    from gramr2_cli.judging import judge

    recs = [records.new_pair("What is 2 + 2?", "4", "5"), records.new_pair("Reverse 'ab'.", "ba", "ab")]
    inp = write(tmp_path, recs)
    from typer.testing import CliRunner

    from gramr2_cli.cli import app
    args = ["self-label", str(inp), "-o", str(tmp_path / "o"), "--model", str(tiny_model), "--samples", "3",
            "--orders", "both", "--engine", "hf", "--no-progress", "-s", "generate.dtype=float32",
            "-s", "generate.verdict_only=true"]
    r = CliRunner().invoke(app, args)                 # in this process: no interpreter start (~10 s of imports)
    assert r.exit_code == 0, r.output
    out = readers.read_all([tmp_path / "o"])
    eng = HFEngine(str(tiny_model))
    texts = judge.judge_prompts(eng.tokenizer, recs, ("ab", "ba"), "gramr2-v1")
    ab = eng.answer_probs(texts, [prompts.ANSWER_PREFIX + "A"] * len(texts))
    assert [r["id"] for r in out] == [r["id"] for r in recs]
    for i, r in enumerate(out):
        j = r["meta"]["judgment"]
        (pa1, pb1), (pa2, pb2) = ab[2 * i], ab[2 * i + 1]
        assert sum(j["votes"].values()) == 2 and j["parse_ok"] == 2
        assert [x["order"] for x in j["samples"]] == ["ab", "ba"]
        assert j["samples"][0]["text"] == prompts.judgment_text(None, "A" if pa1 >= pb1 else "B")
        assert j["samples"][1]["text"] == prompts.judgment_text(None, "A" if pa2 >= pb2 else "B")
        assert j["p_a"] == pytest.approx((pa1 + pb2) / 2, abs=1e-6)


# ---------------------------------------------------------------- a real kill, then resume

def _unlabeled(tmp_path: Path, n: int) -> Path:
    recs = [records.new_pair(f"What is {i} + {i + 1}?", f"It is {2 * i + 1}.", f"It is {2 * i + 2}.")
            for i in range(n)]
    return write(tmp_path, recs)


def _cmd(inp: Path, out: Path, model: Path) -> list[str]:
    return [str(Path(sys.executable).parent / "gramr2"), "self-label", str(inp), "-o", str(out), "--model",
            str(model), "--samples", "2", "--orders", "both", "--engine", "hf", "--no-progress",
            "-s", "generate.batch_size=2", "-s", "generate.max_new_tokens=24", "-s", "generate.dtype=float32"]


@pytest.mark.slow   # the fast tier runs the same kill/rerun check: tests/reliability/test_interrupt.py[self-label-SIGKILL]
def test_sigkill_mid_run_then_rerun_equals_uninterrupted(tmp_path, tiny_model):
    inp = _unlabeled(tmp_path, 16)
    env = {**os.environ, "GRAMR2_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_cmd(inp, full, tiny_model), env=env, check=True, capture_output=True, timeout=300)

    proc = subprocess.Popen(_cmd(inp, killed, tiny_model), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    part = killed / "part-00000-of-00001.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if part.exists() and part.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_at_kill = part.read_bytes().count(b"\n")
    assert 3 <= n_at_kill < 16
    assert json.loads((killed / "manifest.json").read_text())["done"] is False

    subprocess.run(_cmd(inp, killed, tiny_model), env=env, check=True, capture_output=True, timeout=300)
    a, b = readers.read_all([full]), readers.read_all([killed])
    ids = [r["id"] for r in b]
    assert len(ids) == len(set(ids)) == 16 and ids == [r["id"] for r in a]
    strip = lambda r: {**r, "meta": {k: v for k, v in r["meta"].items() if k != "provenance"}}
    assert [strip(r) for r in b] == [strip(r) for r in a]     # same votes, samples, labels: nothing lost
    assert json.loads((killed / "manifest.json").read_text())["done"] is True
