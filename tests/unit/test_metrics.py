"""metrics.py against small tables worked out by hand (in the comments)."""

from __future__ import annotations

import pytest

from gramr2_cli.judging import metrics
from gramr2_cli.judging.metrics import PairOutcome

# JudgeBench-style pairs: (gold, combined label, decision in order ab, decision in order ba, category)
#  #  gold  label  ab    ba    JudgeBench counter        position-consistent  pooled (label == gold)
#  1  A     A      A     A     +1 +1 = 2  right          right                right
#  2  A     A      A     B     +1 -1 = 0  (inconsistent) wrong                right (tie broken to A)
#  3  B     B      B     None  +1  0 = 1                 right                right
#  4  B     A      A     A     -1 -1 = -2                wrong                wrong
#  5  A     None   None  None   0  0 = 0                 wrong                wrong
#  6  B     A      None  A      0 -1 = -1                wrong                wrong
JB = [("A", "A", "A", "A", "knowledge"), ("A", "A", "A", "B", "knowledge"), ("B", "B", "B", None, "knowledge"),
      ("B", "A", "A", "A", "reasoning"), ("A", None, None, None, "math"), ("B", "A", None, "A", "math")]


def jb_outcomes():
    return [PairOutcome(g, lab, (ab, ba), cat) for g, lab, ab, ba, cat in JB]


def test_judgebench_vote_is_the_official_counter():
    assert metrics.judgebench_vote("A", ("A", "A")) == 2
    assert metrics.judgebench_vote("A", ("A", "B")) == 0
    assert metrics.judgebench_vote("B", ("B", None)) == 1
    assert metrics.judgebench_vote("B", (None, "A")) == -1


def test_judgebench_numbers_by_hand():
    m = metrics.judgebench(jb_outcomes())
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(3 / 6)                 # pairs 1, 2, 3
    assert m["position_consistent"] == pytest.approx(2 / 6)      # pairs 1, 3
    # per category, pooled: knowledge 3/3, reasoning 0/1, math 0/2 → mean (1 + 0 + 0) / 3
    assert m["categories"] == {"knowledge": 1.0, "math": 0.0, "reasoning": 0.0}
    assert m["category_mean"] == pytest.approx(1 / 3)
    # per category, position-consistent: knowledge 2/3, reasoning 0, math 0 → mean 2/9
    assert m["position_consistent_by_category"] == {"knowledge": pytest.approx(2 / 3), "math": 0.0,
                                                    "reasoning": 0.0}
    assert m["position_consistent_category_mean"] == pytest.approx(2 / 9)
    # decisions differ in pairs 2 (A/B), 3 (B/None) and 6 (None/A)
    assert m["order_inconsistent"] == pytest.approx(3 / 6)


def test_single_order_scores_by_that_decision_and_missing_orders_give_none():
    one = [PairOutcome("A", "A", ("A",)), PairOutcome("B", "A", ("A",)), PairOutcome("B", None, (None,))]
    assert metrics.position_consistent_accuracy(one) == pytest.approx(1 / 3)
    assert metrics.position_consistent_accuracy([PairOutcome("A", "A")]) is None
    assert metrics.order_inconsistent_rate(one) is None


def test_group_mean_is_unweighted():
    # 3 right of 4 in one group, 0 of 1 in the other: pooled 3/5, group mean (0.75 + 0) / 2
    outs = [PairOutcome("A", "A", group="x")] * 3 + [PairOutcome("A", "B", group="x"),
                                                     PairOutcome("B", "A", group="y")]
    assert metrics.accuracy(outs) == pytest.approx(0.6)
    assert metrics.group_mean(outs) == (pytest.approx(0.375), {"x": 0.75, "y": 0.0})


def test_judgebench_category_from_source():
    assert [metrics.judgebench_category(s) for s in ("mmlu-pro-biology", "livebench-reasoning", "livebench-math",
                                                     "livecodebench", "other")] == \
        ["knowledge", "reasoning", "math", "coding", None]


def rmbench_outcomes():
    """chat: prompt 1 right in all 9 cells; prompt 2 right on the diagonal and the easy cells only.
    safety-refuse: one prompt, right only in cells (0, 0) and (2, 0)."""
    outs = []
    for i in range(3):
        for j in range(3):
            outs.append(PairOutcome("A", "A", group="chat", style=(i, j)))
            outs.append(PairOutcome("A", "A" if i >= j else "B", group="chat", style=(i, j)))
            outs.append(PairOutcome("A", "A" if (i, j) in ((0, 0), (2, 0)) else "B", group="safety-refuse",
                                    style=(i, j)))
    return outs


def test_rmbench_numbers_by_hand():
    m = metrics.rmbench(rmbench_outcomes())
    chat, safety = m["domains"]["chat"], m["domains"]["safety"]
    # chat: hard cells 1/2 each → 0.5; normal 1; easy 1; domain mean (0.5 + 1 + 1) / 3 = 5/6
    assert (chat["hard"], chat["normal"], chat["easy"]) == (0.5, 1.0, 1.0)
    assert chat["mean"] == pytest.approx(5 / 6) and chat["n"] == 18
    # safety: hard 0; normal 1/3 (cell 0,0); easy 1/3 (cell 2,0); mean 2/9
    assert (safety["hard"], safety["normal"], safety["easy"]) == (0.0, pytest.approx(1 / 3), pytest.approx(1 / 3))
    assert safety["mean"] == pytest.approx(2 / 9)
    # over domains, unweighted: easy (1 + 1/3) / 2, normal the same, hard (0.5 + 0) / 2, total (5/6 + 2/9) / 2
    assert m["easy"] == pytest.approx(2 / 3) and m["normal"] == pytest.approx(2 / 3) and m["hard"] == 0.25
    assert m["domain_mean"] == pytest.approx(19 / 36)
    assert metrics.accuracy(rmbench_outcomes()) == pytest.approx(17 / 27)   # pooled differs: 15 + 2 of 27
    assert set(m["domains"]) == {"chat", "safety"} and m["n"] == 27


def test_rmbench_domain_prefixes():
    assert [metrics.rmbench_domain(d) for d in ("chat", "safety-response", "math", "code", "alpacaeval", None)] == \
        ["chat", "safety", "math", "code", None, None]


@pytest.mark.parametrize("golds,rate,one_sided", [(["A"] * 24, 1.0, True), (["A"] * 10 + ["B"], 10 / 11, True),
                                                  (["A"] * 9 + ["B"], 0.9, False), (["B"] * 19 + ["A"], 0.05, True),
                                                  (["A", "B"], 0.5, False)])
def test_gold_balance(golds, rate, one_sided):
    assert metrics.gold_balance(golds) == {"gold_A_rate": pytest.approx(rate), "one_sided": one_sided}


def test_order_inconsistency_tells_a_tie_from_a_missing_verdict():
    """JudgeBench counts `decision1 != decision2` with "A=B" for a tie and None for no decision (issue 23)."""
    outs = [PairOutcome("A", None, (None, None), order_ties=(True, False)),   # tie vs missing: inconsistent
            PairOutcome("A", None, (None, None), order_ties=(True, True)),    # two ties: consistent
            PairOutcome("A", None, (None, None)),                             # two missing: consistent
            PairOutcome("A", "A", ("A", None), order_ties=(False, True))]     # A vs tie: inconsistent
    assert metrics.order_inconsistent_rate(outs) == pytest.approx(2 / 4)


def test_judgment_records_why_each_order_has_no_verdict():
    from gramr2_cli.judging import judge
    samples = [{"order": "ab", "verdict": "A"}, {"order": "ab", "verdict": "B"},      # ab: 1 : 1, a tie
               {"order": "ba", "verdict": None}, {"order": "ba", "verdict": None}]    # ba: nothing parsed
    j = judge.combine(samples, ("ab", "ba"))
    assert (j.order_labels, j.order_reasons) == ([None, None], ["tie", "unparseable"])
    rec = {"label": "A", "meta": {"judgment": j.to_meta(keep_samples=False)}}
    assert metrics.outcome(rec).order_ties == (True, False)
