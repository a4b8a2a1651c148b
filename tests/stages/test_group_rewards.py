"""Group rewards (group_rewards.py) on scripted judgments, every value computed by hand in the comments."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scripted_engine import ScriptedEngine

from gramr2_cli.core.errors import GramrError
from gramr2_cli.judging import judge
from gramr2_cli.judging.group_rewards import (
    REFERENCE,
    GroupConfig,
    fit_bradley_terry,
    judge_compare,
    score_groups,
)

R = REFERENCE


def table(ps: dict, log: list | None = None):
    """A compare that looks up P(shown A better) of (shown A, shown B) in `ps` (one group); None = failed."""
    def compare(calls):
        if log is not None:
            log.append(list(calls))
        return [ps[(a, b)] for _, a, b in calls]
    return compare


def quality_judge(q: list[float], bias: float = 0.0):
    """P(A) = 0.5 + 0.1 (q_a − q_b) + a position bias towards the first shown."""
    return lambda calls: [0.5 + 0.1 * (q[a] - q[b]) + bias for _, a, b in calls]


def test_round_robin_p_a_and_win_rate_with_one_failed_call():
    ps = {(0, 1): 0.8, (1, 0): 0.3, (0, 2): 0.6, (2, 0): 0.5, (1, 2): 0.9, (2, 1): None}
    log: list = []
    (res,) = score_groups([3], table(ps, log), GroupConfig(pairing="round_robin", score="p_a",
                                                                        whole_pairs=False))
    # one engine round with every call, pair-major, both orders
    assert log == [[(0, 0, 1), (0, 1, 0), (0, 0, 2), (0, 2, 0), (0, 1, 2), (0, 2, 1)]]
    # r0 sees 0.8, 1-0.3, 0.6, 1-0.5 → 2.6/4; r1 sees 0.2, 0.3, 0.9 → 1.4/3; r2 sees 0.4, 0.5, 0.1 (its call
    # shown first against r1 failed) → 1/3
    assert res.rewards == pytest.approx([0.65, 1.4 / 3, 1 / 3], abs=1e-12)
    assert (res.judge_calls, res.failed_calls) == (6, 1)
    (win,) = score_groups([3], table(ps), GroupConfig(pairing="round_robin", score="win_rate", whole_pairs=False))
    # wins: r0 1,1,1,½ → 3.5/4; r1 0,0,1 → 1/3; r2 0,½,0 → 1/6
    assert win.rewards == pytest.approx([0.875, 1 / 3, 1 / 6], abs=1e-12)


def test_a_rollout_whose_every_call_failed_gets_none_not_a_neutral_half():
    ps = {(0, 1): 0.9, (1, 0): 0.2, (0, 2): None, (2, 0): None, (1, 2): None, (2, 1): None}
    (res,) = score_groups([3], table(ps), GroupConfig(pairing="round_robin"))
    assert res.rewards[2] is None
    assert res.rewards[:2] == pytest.approx([0.85, 0.15], abs=1e-12)   # (0.9 + 0.8)/2, (0.1 + 0.2)/2
    assert (res.judge_calls, res.failed_calls) == (6, 4)
    (bt,) = score_groups([3], table(ps), GroupConfig(pairing="round_robin", score="bt"))
    assert bt.rewards[2] is None
    assert bt.rewards[0] + bt.rewards[1] == pytest.approx(1.0, abs=1e-12)   # σ(d) + σ(−d) over the two left


def test_reference_pairing_is_todays_reward_and_masks_failures():
    ps = {(0, R): 0.7, (R, 0): 0.4, (1, R): None, (R, 1): 0.8, (2, R): None, (R, 2): None}
    log: list = []
    (res,) = score_groups([3], table(ps, log), GroupConfig(pairing="reference", whole_pairs=False))
    assert log == [[(0, 0, R), (0, R, 0), (0, 1, R), (0, R, 1), (0, 2, R), (0, R, 2)]]
    # r0 = ½ [P(A | r0, ref) + P(B | ref, r0)] = ½ (0.7 + 0.6); r1 has only its B/A call: 1 − 0.8
    assert res.rewards[0] == pytest.approx(0.65, abs=1e-12)
    assert res.rewards[1] == pytest.approx(0.2, abs=1e-12)
    assert res.rewards[2] is None
    assert (res.judge_calls, res.failed_calls) == (6, 3)
    (ab,) = score_groups([3], table({(i, R): 0.1 * (i + 1) for i in range(3)}),
                         GroupConfig(pairing="reference", orders="ab"))
    assert ab.rewards == pytest.approx([0.1, 0.2, 0.3], abs=1e-12)
    assert ab.judge_calls == 3


def test_one_order_alone_never_makes_a_reward_by_default():
    """Issue 17 item 11: with both orders, a comparison whose other order failed is masked as a whole (the one
    order left would carry the judge's position bias)."""
    ps = {(0, R): 0.7, (R, 0): 0.4, (1, R): None, (R, 1): 0.8, (2, R): None, (R, 2): None}
    (res,) = score_groups([3], table(ps), GroupConfig(pairing="reference"))
    assert res.rewards[0] == pytest.approx(0.65, abs=1e-12)
    assert res.rewards[1:] == [None, None]
    assert (res.judge_calls, res.failed_calls) == (6, 4)
    assert res.calls[2:4] == [(1, R, None), (R, 1, None)]
    rr = {(0, 1): 0.8, (1, 0): 0.3, (0, 2): 0.6, (2, 0): 0.5, (1, 2): 0.9, (2, 1): None}
    (res,) = score_groups([3], table(rr), GroupConfig(pairing="round_robin"))
    # the r1/r2 comparison is dropped in both orders: r0 2.6/4, r1 0.2, 0.3 → 0.25, r2 0.4, 0.5 → 0.45
    assert res.rewards == pytest.approx([0.65, 0.25, 0.45], abs=1e-12)


def test_circular_compares_neighbours_and_both_orders_cancel_a_position_bias():
    log: list = []
    judge_ = quality_judge([4, 1, 3, 2], bias=0.05)
    (res,) = score_groups([4], lambda calls: (log.append(list(calls)), judge_(calls))[1],
                          GroupConfig(pairing="circular"))
    assert [(a, b) for _, a, b in log[0]] == [(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2), (3, 0), (0, 3)]
    # r0 meets r1 (0.5 + 0.3) and r3 (0.5 + 0.2): 0.75; r1: 0.2, 0.3; r2: 0.7, 0.6; r3: 0.4, 0.3
    assert res.rewards == pytest.approx([0.75, 0.25, 0.65, 0.35], abs=1e-12)
    assert (res.judge_calls, res.failed_calls) == (8, 0)
    (two,) = score_groups([2], quality_judge([1, 2]), GroupConfig(pairing="circular"))
    assert two.judge_calls == 2                            # G = 2: one pair, not the same pair twice
    assert two.rewards == pytest.approx([0.4, 0.6], abs=1e-12)


def test_knockout_rank_maps_linearly_to_unit_interval():
    q = [1, 3, 2, 4]
    hard = lambda calls: [0.9 if q[a] > q[b] else 0.1 for _, a, b in calls]
    (res,) = score_groups([4], hard, GroupConfig(pairing="knockout"))
    # 0 vs 1 → 1; 1 vs 2 → 1; 1 vs 3 → 3. Ranking [3, 1, 2, 0] → 1, 2/3, 1/3, 0
    assert res.rewards == pytest.approx([0.0, 2 / 3, 1 / 3, 1.0], abs=1e-12)
    assert [(a, b) for a, b, _ in res.calls] == [(0, 1), (1, 0), (1, 2), (2, 1), (1, 3), (3, 1)]
    assert (res.judge_calls, res.failed_calls) == (6, 0)


def test_knockout_masks_a_rollout_whose_comparison_failed():
    q = [1, 3, 2]
    judged = lambda calls: [None if 2 in (a, b) else (0.9 if q[a] > q[b] else 0.1) for _, a, b in calls]
    (res,) = score_groups([3], judged, GroupConfig(pairing="knockout"))
    # 0 vs 1 → 1; 1 vs 2 failed in both orders: the incumbent 1 stays, 2 counts for nobody → ranking of {1, 0}
    assert res.rewards[2] is None
    assert res.rewards[:2] == pytest.approx([0.0, 1.0], abs=1e-12)
    assert (res.judge_calls, res.failed_calls) == (4, 2)


def test_bradley_terry_recovers_consistent_strengths_exactly():
    # s0 − s1 = log 2, s1 − s2 = log 2 → P(0>1) = 2/3, P(1>2) = 2/3, P(0>2) = 4/5
    ps = {(0, 1): 2 / 3, (0, 2): 4 / 5, (1, 2): 2 / 3}
    (res,) = score_groups([3], table(ps), GroupConfig(pairing="round_robin", orders="ab", score="bt",
                                                      bt_prior=0.0))
    # r_i = mean_j σ(s_i − s_j): (2/3 + 4/5)/2, (1/3 + 2/3)/2, (1/5 + 1/3)/2
    assert res.rewards == pytest.approx([11 / 15, 0.5, 4 / 15], abs=1e-9)
    s = fit_bradley_terry(3, [(0, 1, 2 / 3), (0, 2, 4 / 5), (1, 2, 2 / 3)], prior=0.0)
    assert s == pytest.approx([math.log(2), 0.0, -math.log(2)], abs=1e-9)


def test_bradley_terry_prior_keeps_outright_wins_finite_at_the_stationary_point():
    calls = [(0, 1, 1.0), (1, 0, 0.0), (1, 2, 1.0), (2, 1, 0.0), (0, 2, 1.0), (2, 0, 0.0)]
    s = fit_bradley_terry(3, calls, prior=0.1)
    grad = -0.1 * s
    for a, b, p in calls:
        q = 1 / (1 + math.exp(-(s[a] - s[b])))
        grad[a] += p - q
        grad[b] -= p - q
    assert np.abs(grad).max() < 1e-9                       # the penalised likelihood's optimum
    assert s[1] == pytest.approx(0.0, abs=1e-12) and s[0] == pytest.approx(-s[2], abs=1e-12)
    assert s[0] > 1.0                                      # 0 beat everyone: clearly ahead, yet finite


def test_groups_share_compare_calls_and_report_their_own_counts():
    log: list = []
    def compare(calls):
        log.append(list(calls))
        time.sleep(0.05)
        return [0.5 + 0.1 * (a - b) for _, a, b in calls]
    res = score_groups([3, 2], compare, GroupConfig(pairing="round_robin", orders="ab"))
    assert log == [[(0, 0, 1), (0, 0, 2), (0, 1, 2), (1, 0, 1)]]
    assert [r.judge_calls for r in res] == [3, 1]
    assert res[1].rewards == pytest.approx([0.4, 0.6], abs=1e-12)
    assert res[0].seconds == pytest.approx(3 * res[1].seconds, rel=1e-9)   # wall time split by call share
    assert res[0].seconds + res[1].seconds >= 0.05


def test_config_check_lists_every_problem():
    assert GroupConfig().check() == []
    problems = GroupConfig(pairing="swiss", orders="abba", votes=0, bt_prior=-1).check()
    assert [p.split(":")[0].split(" ")[0] for p in problems] == ["group.pairing", "group.orders", "group.votes",
                                                                 "group.bt_prior"]
    assert GroupConfig(pairing="knockout", score="bt").check() == [
        "group.score: bt needs comparisons between rollouts; pairing 'knockout' does not make them "
        "(use round_robin or circular)"]
    with pytest.raises(GramrError, match="group.score: unknown value 'elo'"):
        score_groups([2], quality_judge([0, 1]), GroupConfig(score="elo"))


def test_judge_compare_masks_unparseable_judgments():
    """Through the real judging path (judge.judge_pairs) on a scripted engine: 'bad' never gets a verdict."""
    def decide(q, a, b, k):
        if "bad" in (a, b):
            return None, None
        return ("A", 0.8) if a > b else ("B", 0.3)
    eng = ScriptedEngine(decide)
    fn = lambda pairs: judge.judge_pairs(eng, pairs, orders="ab")
    compare = judge_compare(fn, ["q0"], [["zz", "bad", "aa"]])
    (res,) = score_groups([3], compare, GroupConfig(pairing="round_robin"))
    # zz vs aa: P(zz) = 0.8 shown first, 1 − 0.3 shown second → 0.75 each; aa gets 0.25; "bad" nothing
    assert res.rewards[1] is None
    assert res.rewards[0] == pytest.approx(0.75, abs=1e-12)
    assert res.rewards[2] == pytest.approx(0.25, abs=1e-12)
    assert (res.judge_calls, res.failed_calls) == (6, 4)
    assert len(eng.calls) == 1 and len(eng.calls[0]) == 6      # one engine call for the whole group
    with pytest.raises(GramrError, match="needs one reference response"):
        score_groups([2], judge_compare(fn, ["q"], [["a", "b"]]), GroupConfig(pairing="reference"))
