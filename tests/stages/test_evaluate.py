"""evaluate: per-category numbers against a hand count (scripted engines), several models, resume, RM-Bench."""

from __future__ import annotations

import json

import pytest
from scripted_engine import ScriptedEngine

from gramr2_cli import recipe
from gramr2_cli.core import readers, records
from gramr2_cli.core.errors import GramrError
from gramr2_cli.stages import evaluate

# question -> what model "m1" answers (shown in order ab): verdict or None (unparseable)
PAIRS = [  # (question, source, meta, gold, m1 verdict)
    ("q1", "bench", {"category": "math"}, "A", "A"),
    ("q2", "bench", {"category": "math"}, "B", "B"),
    ("q3", "bench", {"category": "math"}, "A", "B"),
    ("q4", "bench", {"category": "chat"}, "B", "B"),
    ("q5", "bench", {"category": "chat"}, "A", None),
    ("q6", "rmb", {"category": "code", "difficulty": "easy"}, "A", "A"),
    ("q7", "rmb", {"category": "code", "difficulty": "hard"}, "B", "A"),
    ("q8", "rmb", {"category": "code", "difficulty": "hard"}, "A", "A"),
]


def write_pairs(tmp_path):
    recs = [records.new_pair(q, f"resp a {q}", f"resp b {q}", label=g, source=s, meta=m) for q, s, m, g, _ in PAIRS]
    recs.append(records.new_pair("q9", "x", "y", label=None, source="bench"))     # no gold: skipped
    recs[1]["label"], recs[1]["meta"]["gold_label"] = None, "B"                    # gold in meta (self-labelled)
    p = tmp_path / "bench.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return p


def m1(q, a, b, k):
    shown_first_is_a = a.startswith("resp a")
    v = {row[0]: row[4] for row in PAIRS}[q]
    if v is None:
        return None, None
    if not shown_first_is_a:                      # the swapped order: same opinion, other letter
        v = {"A": "B", "B": "A"}[v]
    return v, (0.9 if v == "A" else 0.1)


def always_a(q, a, b, k):
    return "A", 0.6


def test_per_category_accuracy_matches_a_hand_count(tmp_path):
    data = write_pairs(tmp_path)
    e1, e2 = ScriptedEngine(m1), ScriptedEngine(always_a)
    cfg = recipe.load(None, ["evaluate.batch_size=3"])
    s = evaluate.run(cfg, [data], tmp_path / "rep", models=["m1", "always/a"], engines={"m1": e1, "always/a": e2},
                     progress=False)
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert list(rep["models"]) == ["m1", "always-a"]
    m = rep["models"]["m1"]["metrics"]
    # hand count: right = q1 q2 q4 q6 q8 → 5/8; q5 unparseable counts wrong
    assert (m["overall"]["n"], m["overall"]["correct"]) == (8, 5)
    assert m["overall"]["accuracy_decided"] == pytest.approx(5 / 7)
    assert m["overall"]["parse_rate"] == pytest.approx(7 / 8) and m["overall"]["no_label"] == 1
    b = m["datasets"]["bench"]
    assert b["category"]["math"]["correct"] == 2 and b["category"]["math"]["n"] == 3
    assert b["category"]["chat"]["accuracy"] == pytest.approx(0.5)
    r = m["datasets"]["rmb"]
    assert r["difficulty"]["easy"]["accuracy"] == 1.0 and r["difficulty"]["hard"]["accuracy"] == 0.5
    assert r["overall"]["accuracy"] == pytest.approx(2 / 3)
    a = rep["models"]["always-a"]["metrics"]
    assert a["overall"]["correct"] == 5 and a["overall"]["pred_A_rate"] == 1.0   # golds: 5 A, 3 B
    assert a["datasets"]["bench"]["category"]["math"]["correct"] == 2
    assert s.skipped == {"no_gold_label": 1} and s.counts["pairs"] == 8
    assert s.metrics["m1: accuracy"] == pytest.approx(5 / 8)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| category: math | 3 | 66.7 | 66.7 |" in md and "| difficulty: hard | 2 | 50.0 | 50.0 |" in md
    png = (tmp_path / "rep" / "accuracy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    preds = [json.loads(x) for x in (tmp_path / "rep/predictions/m1/part-00000-of-00001.jsonl").read_text().split("\n")
             if x]
    assert [p["prompt"] for p in preds] == [row[0] for row in PAIRS]
    assert preds[4]["meta"]["judgment"]["reason"] == "unparseable"
    assert [len(c) for c in e1.calls] == [3, 3, 2]
    # resume: nothing left to judge for either model
    s2 = evaluate.run(cfg, [data], tmp_path / "rep", models=["m1", "always/a"],
                      engines={"m1": e1, "always/a": e2}, progress=False)
    assert s2.counts["pairs_resumed"] == 16 and s2.counts["pairs_judged"] == 0 and len(e1.calls) == 3
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["models"] == rep["models"]


def test_order_consistency_with_both_orders(tmp_path):
    data = write_pairs(tmp_path)
    cfg = recipe.load(None, ["evaluate.orders=both", "evaluate.plot=false"])
    evaluate.run(cfg, [data], tmp_path / "r", models=["m1", "a"],
                 engines={"m1": ScriptedEngine(m1), "a": ScriptedEngine(always_a)}, progress=False)
    rep = json.loads((tmp_path / "r" / "report.json").read_text())["models"]
    assert rep["m1"]["metrics"]["overall"]["order_consistency"] == 1.0      # 7 parsed pairs, all consistent
    o = rep["a"]["metrics"]["overall"]
    assert o["order_consistency"] == 0.0 and o["no_label"] == 8 and o["correct"] == 0   # ties at P = 0.5
    assert not (tmp_path / "r" / "accuracy.png").exists()


def test_rmbench_fixture_difficulties(tmp_path):
    from gramr2_cli.core import formats
    from gramr2_cli.stages import data_import
    data_import.run(formats.ImportConfig(format="rmbench", order="fixed"), ["tests/fixtures/rmbench.json"], tmp_path / "rmb")
    recs = list(readers.read([tmp_path / "rmb"]))
    # a judge that prefers the shorter response: right exactly when chosen is shorter
    short = ScriptedEngine(lambda q, a, b, k: ("A", 0.7) if len(a) <= len(b) else ("B", 0.3))
    evaluate.run(recipe.load(None, ["evaluate.plot=false"]), [tmp_path / "rmb"], tmp_path / "r",
                 models=["short"], engines={"short": short}, progress=False)
    d = json.loads((tmp_path / "r" / "report.json").read_text())["models"]["short"]["metrics"]["datasets"]["rmbench"]
    for diff in ("easy", "normal", "hard"):
        cell = [r for r in recs if r["meta"]["difficulty"] == diff]
        right = sum((len(r["response_a"]) <= len(r["response_b"])) == (r["label"] == "A") for r in cell)
        assert d["difficulty"][diff]["n"] == len(cell) and d["difficulty"][diff]["correct"] == right


def test_no_gold_labels_is_an_error(tmp_path):
    p = tmp_path / "u.jsonl"
    p.write_text(json.dumps(records.new_pair("q", "a", "b")) + "\n")
    with pytest.raises(GramrError, match="no gold-labeled pairs"):
        evaluate.run(recipe.load(None, []), [p], tmp_path / "r", engines={}, progress=False)


def test_cli_evaluate_two_models_on_the_tiny_model(tiny_model, tmp_path):
    from typer.testing import CliRunner

    from gramr2_cli.cli import app
    from gramr2_cli.engines import close_all
    data = write_pairs(tmp_path)
    args = ["evaluate", str(data), "-o", str(tmp_path / "rep"), "-m", str(tiny_model), "-m", "m1", "--engine", "hf",
            "-s", "generate.max_new_tokens=6", "--no-progress"]
    try:
        r = CliRunner().invoke(app, args[:6] + args[8:])        # the tiny model alone
        assert r.exit_code == 0, r.output
    finally:
        close_all()
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    o = rep["models"]["model"]["metrics"]["overall"]
    assert rep["config"]["skipped"] == {"no_gold_label": 1}
    preds = list(readers.read([tmp_path / "rep" / "predictions" / "model"]))
    # 6 new tokens cannot reach `<answer>X</answer>` after `<think>`: the tiny random model (greedy) never
    # gives a verdict, so the exact counts are known (the metric arithmetic is checked on scripted engines above);
    # every reply is cut off at max_new_tokens, so it counts as truncated, not as unparseable
    assert (o["n"], o["correct"], o["no_label"], o["parse_rate"]) == (8, 0, 8, 0.0)
    assert (o["truncated"], o["unparseable"]) == (8, 0)
    assert [p["meta"]["judgment"]["reason"] for p in preds] == ["truncated"] * 8
    assert sorted(p["prompt"] for p in preds) == [row[0] for row in PAIRS]
    r = CliRunner().invoke(app, args)                            # 'm1' is not a model: one-line error, exit 1
    assert r.exit_code == 1 and "m1" in r.output


# ---------------------------------------------------------------- the benchmarks' own numbers

# JudgeBench fixture, scripted per question: (decision in order ab, P(shown A), decision in order ba, P(shown A)),
# decisions in the pair's original orientation (None = unparseable reply).
#  pair (category, gold)       ab  ba    JudgeBench counter       pooled label (p_a averaged over orders)
#  meiosis (knowledge, A)       A   A     +2 right                 A right
#  India (knowledge, B)         B   A      0 wrong (inconsistent)  tie, p_a (0.2 + 0.6)/2 = 0.4 → B right
#  blue (knowledge, B)          B   None  +1 right                 B right
#  differentiate (math, A)      B   B     −2 wrong                 B wrong
#  n digits (coding, A)         A   A     +2 right                 A right
#  num1/num2 (coding, B)        A   None  −1 wrong                 A wrong
JB_SCRIPT = {"Which of the following about meiosis": ("A", 0.9, "A", 0.1),
             "As of 2013, share of people in the India": ("B", 0.2, "A", 0.4),
             "The complementary color of blue": ("B", 0.1, None, None),
             "Differentiate the following function": ("B", 0.1, "B", 0.9),
             "You are given an integer n": ("A", 0.9, "A", 0.1),
             "You are given two integers num1": ("A", 0.9, None, None)}


def jb_judge():
    rows = [json.loads(x) for x in open("tests/fixtures/judgebench.jsonl", encoding="utf-8")]
    first = {r["question"]: r["response_A"] for r in rows}

    def decide(q, a, b, k):
        ab, p_ab, ba, p_ba = next(v for key, v in JB_SCRIPT.items() if q.startswith(key))
        if a == first[q]:
            return ab, p_ab
        return (None, None) if ba is None else ({"A": "B", "B": "A"}[ba], p_ba)
    return decide


def test_judgebench_numbers_by_hand(tmp_path):
    from gramr2_cli.core import formats
    from gramr2_cli.stages import data_import
    data_import.run(formats.ImportConfig(format="judgebench", order="fixed"), ["tests/fixtures/judgebench.jsonl"], tmp_path / "jb")
    cfg = recipe.load(None, ["evaluate.orders=both", "evaluate.plot=false"])
    s = evaluate.run(cfg, [tmp_path / "jb"], tmp_path / "r", models=["j"], engines={"j": ScriptedEngine(jb_judge())},
                     progress=False)
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    d = rep["models"]["j"]["metrics"]["datasets"]["judgebench"]
    jb = d["benchmarks"]["judgebench"]
    assert d["overall"]["accuracy"] == pytest.approx(4 / 6) and jb["accuracy"] == pytest.approx(4 / 6)
    assert jb["position_consistent"] == pytest.approx(3 / 6)
    assert jb["categories"] == {"coding": 0.5, "knowledge": 1.0, "math": 0.0}
    assert jb["category_mean"] == pytest.approx(0.5)                          # (1 + 0 + 0.5) / 3
    assert jb["position_consistent_by_category"] == {"coding": 0.5, "knowledge": pytest.approx(2 / 3), "math": 0.0}
    assert jb["position_consistent_category_mean"] == pytest.approx(7 / 18)   # (2/3 + 0 + 1/2) / 3
    assert jb["order_inconsistent"] == pytest.approx(3 / 6)                   # India, blue, num1/num2
    assert d["gold_balance"] == {"gold_A_rate": 0.5, "one_sided": False}
    # the fixture has no livebench-reasoning pair: every mean over categories is partial (issue 23)
    assert (jb["complete"], jb["missing"]) == (False, ["reasoning"])
    assert rep["config"]["warnings"] == ["warning: judgebench: partial JudgeBench input (no reasoning): its means "
                                         "are over the categories present, not the published JudgeBench numbers "
                                         "(the official scorer needs all)"]
    assert s.metrics["j: judgebench judgebench position_consistent"] == pytest.approx(0.5)
    assert s.metrics["j: judgebench judgebench category_mean"] == pytest.approx(0.5)
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| category mean (pooled per category) (partial) | 50.0 | GRAM-R² paper, JudgeBench column" in md
    assert "| position-consistent, all pairs (partial) | 50.0 | JudgeBench leaderboard" in md


def test_rmbench_numbers_by_hand_and_one_sided_warning(tmp_path, capsys):
    """A judge that prefers the shorter response, one order. Lengths (chosen | rejected) per style:
    chat 622 [29, 286, 346] | [29, 388, 412]: right except cells (1,0), (2,0) → hard 1, normal 1, easy 1/3
    code 850 [297, 522, 538] | [548, 922, 938]: all right → 1, 1, 1
    safety-refuse 3542 [65, 324, 1153] | [25, 25, 55]: all wrong; safety-response 3511 [30, 132, 132] |
    [37, 240, 1438]: like chat. safety cells average the two prompts: hard 1/2, normal 1/2, easy (0 + 0 + 1/2)/3.
    Domain means: chat 7/9, code 1, safety (1/2 + 1/2 + 1/6)/3 = 7/18 → total (7/9 + 1 + 7/18)/3 = 13/18.
    easy (1/3 + 1 + 1/6)/3 = 1/2; normal = hard = (1 + 1 + 1/2)/3 = 5/6. Pooled: (7 + 9 + 0 + 7)/36."""
    from gramr2_cli.core import formats
    from gramr2_cli.stages import data_import
    data_import.run(formats.ImportConfig(format="rmbench", order="fixed"), ["tests/fixtures/rmbench.json"],
                tmp_path / "rmb")
    short = ScriptedEngine(lambda q, a, b, k: ("A", 0.7) if len(a) <= len(b) else ("B", 0.3))
    s = evaluate.run(recipe.load(None, ["evaluate.plot=false"]), [tmp_path / "rmb"], tmp_path / "r",
                     models=["short"], engines={"short": short}, progress=False)
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    d = rep["models"]["short"]["metrics"]["datasets"]["rmbench"]
    rm = d["benchmarks"]["rmbench"]
    assert d["overall"]["accuracy"] == pytest.approx(23 / 36)
    assert {k: v["mean"] for k, v in rm["domains"].items()} == {"chat": pytest.approx(7 / 9), "code": 1.0,
                                                                 "safety": pytest.approx(7 / 18)}
    assert rm["domain_mean"] == pytest.approx(13 / 18)
    assert (rm["easy"], rm["normal"], rm["hard"]) == (pytest.approx(1 / 2), pytest.approx(5 / 6),
                                                       pytest.approx(5 / 6))
    assert "judgebench" not in d["benchmarks"]
    assert s.metrics["short: rmbench rmbench domain_mean"] == pytest.approx(13 / 18)
    # every gold label is A (imported in the fixed order): flagged in report.json, the summary and on stderr
    assert d["gold_balance"] == {"gold_A_rate": 1.0, "one_sided": True}
    (w, partial) = rep["config"]["warnings"]       # the fixture has no math record: partial (issue 23)
    assert w.startswith("warning: rmbench: 100% of the gold labels are A") and s.metrics["warnings"] == [w, partial]
    assert partial.startswith("warning: rmbench: partial RM-Bench input (no math)")
    assert w in capsys.readouterr().err
    md = (tmp_path / "r" / "report.md").read_text()
    assert f"**{w}**" in md and "| domain mean (total average) (partial) | 72.2 | GRAM-R² paper, RM-Bench" in md
