"""rank: selection algorithms on a scripted judge, pair verdicts with votes/orders, list ranking, CLI on tiny."""

from __future__ import annotations

import json
import math
import random

import pytest
from scripted_engine import ScriptedEngine, by_quality

from gramr2_cli import recipe
from gramr2_cli.core import records
from gramr2_cli.core.errors import GramrError
from gramr2_cli.judging import judge, selection
from gramr2_cli.stages import rank_list, rank_pairs


def scripted(order: list[int], calls: list):
    """compare() for a total order: `order[k]` is candidate k's quality; records every call."""
    def compare(pairs):
        calls.append(list(pairs))
        return [1.0 if order[i] > order[j] else 0.0 for i, j in pairs]
    return compare


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_knockout_makes_n_minus_1_calls_and_finds_the_best(n):
    for seed in range(5):
        quality = random.Random(seed).sample(range(100), n)
        calls: list = []
        sel = selection.select("knockout", n, scripted(quality, calls))
        assert sel.winner == max(range(n), key=lambda k: quality[k])
        assert len(calls) == n - 1 and all(len(c) == 1 for c in calls)
        assert len(sel.comparisons) == n - 1
        assert sorted(sel.ranking) == list(range(n))


def test_knockout_tie_keeps_the_incumbent():
    sel = selection.select("knockout", 4, lambda pairs: [0.5] * len(pairs))
    assert sel.winner == 0 and [c[:2] for c in sel.comparisons] == [(0, 1), (0, 2), (0, 3)]


@pytest.mark.parametrize("n", [2, 3, 4, 5, 7, 8, 9, 16])
def test_tournament_and_mergesort_agree_with_a_total_order(n):
    for seed in range(5):
        quality = random.Random(seed).sample(range(1000), n)
        truth = sorted(range(n), key=lambda k: -quality[k])
        calls: list = []
        t = selection.select("tournament", n, scripted(quality, calls))
        assert t.winner == truth[0]
        assert len(calls) == math.ceil(math.log2(n))          # one call per round
        assert sum(len(c) for c in calls) == n - 1
        calls = []
        f = selection.select("mergesort", n, scripted(quality, calls))
        assert f.ranking == truth and f.winner == truth[0]
        asked = [tuple(sorted(p)) for c in calls for p in c]
        assert len(asked) == len(set(asked))                  # no pair judged twice
        assert len(asked) <= n * math.ceil(math.log2(n))
        rr = selection.select("round_robin", n, scripted(quality, calls := []))
        assert rr.ranking == truth and len(calls) == 1 and len(calls[0]) == n * (n - 1) // 2


def test_full_is_the_papers_repeated_selection_with_exact_comparison_counts():
    """`full` = knockout over the rest, again and again; a pair met again is answered from the cache."""
    calls: list = []
    sel = selection.select("full", 4, scripted([2, 0, 3, 1], calls))
    # knockout over 0..3 → 2 (3 comparisons); over 0,1,3 → 0 ((0, 1) cached); over 1,3 → 3; 1 is last
    assert [c for step in calls for c in step] == [(0, 1), (0, 2), (2, 3), (0, 3), (1, 3)]
    assert (sel.winner, sel.ranking, len(sel.comparisons)) == (2, [2, 0, 3, 1], 5)
    for n in (1, 2, 5, 8):
        best_first = list(range(n, 0, -1))                      # every pair once: n(n−1)/2
        calls = []
        assert selection.select("full", n, scripted(best_first, calls)).ranking == list(range(n))
        assert (len(calls), sum(len(c) for c in calls)) == (n * (n - 1) // 2, n * (n - 1) // 2)
        worst_first = list(range(n))                            # later knockouts all cached: n − 1
        calls = []
        assert selection.select("full", n, scripted(worst_first, calls)).ranking == list(range(n))[::-1]
        assert sum(len(c) for c in calls) == max(n - 1, 0)


@pytest.mark.parametrize("method", ["full", "mergesort"])
def test_complete_rankings_on_a_cyclic_judge_terminate_without_repeats(method):
    beats = {(0, 1), (1, 2), (2, 0)}                          # rock-paper-scissors, plus 3 loses to all
    calls: list = []

    def compare(pairs):
        calls.append(list(pairs))
        return [1.0 if (i, j) in beats or j == 3 else 0.0 for i, j in pairs]
    sel = selection.select(method, 4, compare)
    assert sorted(sel.ranking) == [0, 1, 2, 3] and sel.ranking[-1] == 3
    asked = [tuple(sorted(p)) for c in calls for p in c]
    assert len(asked) == len(set(asked))


def test_drive_batches_the_same_step_of_every_record():
    sizes = [4, 2, 6, 1]
    qual = [[3, 9, 1, 4], [1, 2], [5, 4, 8, 2, 7, 1], [0]]
    calls: list = []

    def compare(flat):
        calls.append(list(flat))
        return [1.0 if qual[r][i] > qual[r][j] else 0.0 for r, i, j in flat]
    sels, rounds = selection.drive(sizes, "knockout", compare)
    assert [s.winner for s in sels] == [1, 1, 2, 0]
    assert rounds == len(calls) == 5                          # max(n) - 1 engine rounds for all records
    assert [len(c) for c in calls] == [3, 2, 2, 1, 1]         # records drop out as they finish
    assert [len(s.comparisons) for s in sels] == [3, 1, 5, 0]


def test_drive_rejects_unknown_method_and_bad_compare():
    with pytest.raises(GramrError, match="method: unknown value 'bubble'; choose from knockout, full, "):
        selection.drive([3], "bubble", lambda f: [])
    with pytest.raises(GramrError, match="returned 0 values"):
        selection.drive([3], "knockout", lambda f: [])


def test_preference_follows_the_vote_when_voting_overrules_the_probability():
    from gramr2_cli.judging.judge import combine
    s = [{"order": "ab", "verdict": "A", "p_a": 0.4}, {"order": "ab", "verdict": "A", "p_a": 0.45},
         {"order": "ab", "verdict": "B", "p_a": 0.1}]
    j = combine(s, ("ab",))
    assert j.label == "A" and judge.preference(j) == 1.0
    j = combine([{"order": "ab", "verdict": "B", "p_a": 0.2}], ("ab",))
    assert judge.preference(j) == pytest.approx(0.2)
    j = combine([{"order": "ab", "verdict": None, "p_a": None}], ("ab",))
    assert judge.preference(j) == 0.5


# ---------------------------------------------------------------- stage runs with a scripted engine

def pairs_file(tmp_path, n=6):
    recs = []
    for k in range(n):
        good, bad = f"good answer {k}", f"bad answer {k}"
        a, b, lab = (good, bad, "A") if k % 2 == 0 else (bad, good, "B")
        recs.append({"prompt": f"question {k}", "response_a": a, "response_b": b, "label": lab,
                     "meta": {"category": "c"}})
    p = tmp_path / "pairs.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return p, recs


def read_out(d):
    return [json.loads(line) for f in sorted(d.glob("part-*.jsonl")) for line in f.read_text().splitlines()]


def good_judge(q, a, b, k):
    return ("A", 0.8) if a.startswith("good") else ("B", 0.2)


def test_rank_pairs_writes_judgments_and_resumes(tmp_path):
    data, recs = pairs_file(tmp_path)
    cfg = recipe.load(None, ["rank.orders=both", "rank.batch_size=4"])
    eng = ScriptedEngine(good_judge)
    s = rank_pairs.run(cfg, [data], tmp_path / "out", engine=eng, progress=False)
    out = read_out(tmp_path / "out")
    assert [r["id"] for r in out] == [records.normalize(r)["id"] for r in recs]
    for r in out:
        j = r["meta"]["judgment"]
        assert j["label"] == r["label"] and j["order_consistent"] is True
        assert j["votes"] == {"A": 2 if r["label"] == "A" else 0, "B": 2 if r["label"] == "B" else 0, "null": 0}
        assert j["p_a"] == pytest.approx(0.8 if r["label"] == "A" else 0.2)
        assert "samples" not in j
    assert s.metrics["accuracy"] == 1.0 and s.metrics["order_disagreement"] == 0.0
    assert len(eng.calls) == 2 and [len(c) for c in eng.calls] == [8, 4]   # 4 pairs × 2 orders, then 2 × 2
    assert eng.closed is False                                             # a given engine stays open
    s2 = rank_pairs.run(cfg, [data], tmp_path / "out", engine=eng, progress=False)
    assert s2.skipped == {"already_done": 6} and len(read_out(tmp_path / "out")) == 6
    assert s2.metrics["accuracy"] == 1.0 and s2.metrics["pairs"] == 6      # over the whole output


def test_both_orders_expose_a_position_biased_judge(tmp_path):
    data, _ = pairs_file(tmp_path, n=4)
    cfg = recipe.load(None, ["rank.orders=both"])
    eng = ScriptedEngine(lambda q, a, b, k: ("A", 0.7))        # always the first shown
    s = rank_pairs.run(cfg, [data], tmp_path / "o", engine=eng, progress=False)
    for r in read_out(tmp_path / "o"):
        j = r["meta"]["judgment"]
        assert j["votes"] == {"A": 1, "B": 1, "null": 0}
        assert j["order_consistent"] is False
        assert j["p_a"] == pytest.approx(0.5)                  # (0.7 + (1 - 0.7)) / 2: no preference left
        assert j["label"] is None and j["reason"] == "tie"     # 0.5 cannot break the tie
    assert s.metrics["order_disagreement"] == 1.0 and s.metrics["no_label"] == 4
    # one order alone is fooled: every pair gets "A"
    s1 = rank_pairs.run(recipe.load(None, []), [data], tmp_path / "o1", engine=eng, progress=False)
    assert s1.metrics["label_A"] == 4 and s1.metrics["accuracy"] == 0.5


def test_voting_tie_break_by_mean_answer_probability(tmp_path):
    data, _ = pairs_file(tmp_path, n=2)
    split = {0: ("A", 0.8), 1: ("B", 0.4)}                     # 1 vote each; mean P(A) = 0.6 → A
    eng = ScriptedEngine(lambda q, a, b, k: split[k])
    s = rank_pairs.run(recipe.load(None, ["rank.votes=2"]), [data], tmp_path / "v", engine=eng,
                       progress=False)
    for r in read_out(tmp_path / "v"):
        j = r["meta"]["judgment"]
        assert (j["label"], j["tie_broken"], j["votes"]) == ("A", True, {"A": 1, "B": 1, "null": 0})
        assert j["p_a"] == pytest.approx(0.6) and j["confidence"] == pytest.approx(0.6)
    assert s.metrics["tie_broken"] == 2
    rank_pairs.run(recipe.load(None, ["rank.votes=2", "rank.tie_break=false"]), [data], tmp_path / "nv",
                   engine=eng, progress=False)
    assert {r["meta"]["judgment"]["label"] for r in read_out(tmp_path / "nv")} == {None}


def lists_file(tmp_path):
    rng = random.Random(3)
    recs = []
    for k, n in enumerate([4, 2, 7, 1, 5]):
        cands = [f"cand {k}-{c}" for c in range(n)]
        rng.shuffle(cands)
        recs.append({"prompt": f"p{k}", "candidates": cands})
    recs[1]["id"] = "given-id"
    p = tmp_path / "lists.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    quality = {c: int(c.split("-")[1]) for r in recs for c in r["candidates"]}
    return p, recs, quality


@pytest.mark.parametrize("method", ["knockout", "tournament", "full", "mergesort"])
def test_rank_list_batches_records_and_finds_winners(tmp_path, method):
    data, recs, quality = lists_file(tmp_path)
    cfg = recipe.load(None, ["rank.orders=both", f"rank.method={method}"])
    eng = ScriptedEngine(by_quality(quality))
    s = rank_list.run(cfg, [data], tmp_path / method, engine=eng, progress=False)
    out = read_out(tmp_path / method)
    assert out[1]["id"] == "given-id" and out[0]["id"] == records.list_id(recs[0]["prompt"], recs[0]["candidates"])
    for r in out:
        m, c = r["meta"]["rank"], r["candidates"]
        assert c[m["winner"]] == max(c, key=quality.get)
        if method in ("full", "mergesort"):
            assert [c[k] for k in m["ranking"]] == sorted(c, key=lambda x: -quality[x])
        if method in ("knockout", "tournament"):
            assert m["judge_calls"] == 2 * (len(c) - 1)       # n−1 comparisons per order
    if method == "knockout":
        assert len(eng.calls) == 6                            # max n − 1 = 6 engine rounds for all 5 records
    if method == "tournament":
        assert len(eng.calls) == 3                            # ⌈log2 7⌉
    assert s.metrics["judge_calls"] == sum(len(c) for c in eng.calls)
    assert s.counts["out"] == 5


def test_rank_list_rejects_bad_records(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"prompt": "x", "candidates": ["a", ""]}) + "\n")
    with pytest.raises(GramrError, match=r"line 1: candidates\[1\]"):
        rank_list.run(recipe.load(None, []), [p], tmp_path / "o", engine=ScriptedEngine(None),
                      progress=False)


# ---------------------------------------------------------------- CLI on the tiny model (real hf engine)

def test_cli_rank_pairs_and_list_on_the_tiny_model(tiny_model, tmp_path):
    from typer.testing import CliRunner

    from gramr2_cli.cli import app
    from gramr2_cli.engines import close_all
    data, recs = pairs_file(tmp_path, n=3)
    lists, lrecs, _ = lists_file(tmp_path)
    common = ["-m", str(tiny_model), "--engine", "hf", "-s", "generate.max_new_tokens=6", "--no-progress"]
    run = CliRunner().invoke
    try:
        r = run(app, ["rank", "pairs", str(data), "-o", str(tmp_path / "p"), "--orders", "both", *common,
                      "-s", "rank.keep_samples=true"])
        assert r.exit_code == 0, r.output
        out = read_out(tmp_path / "p")
        assert [o["id"] for o in out] == [records.normalize(x)["id"] for x in recs]
        for o in out:
            j = o["meta"]["judgment"]
            assert sum(j["votes"].values()) == 2 and [s["order"] for s in j["samples"]] == ["ab", "ba"]
            assert o["meta"]["provenance"]["rank"]["model"] == str(tiny_model)
        # greedy judging is deterministic: a second run writes the same judgments
        r = run(app, ["rank", "pairs", str(data), "-o", str(tmp_path / "p2"), "--orders", "both", *common,
                      "-s", "rank.keep_samples=true"])
        assert [o["meta"]["judgment"] for o in read_out(tmp_path / "p2")] == [o["meta"]["judgment"] for o in out]
        r = run(app, ["rank", "list", str(lists), "-o", str(tmp_path / "l"), "--method", "knockout", *common])
        assert r.exit_code == 0, r.output
        for o, src in zip(read_out(tmp_path / "l"), lrecs):
            m = o["meta"]["rank"]
            n = len(src["candidates"])
            assert o["candidates"] == src["candidates"] and m["judge_calls"] == n - 1
            assert sorted(m["ranking"]) == list(range(n)) and len(m["comparisons"]) == n - 1
        r = run(app, ["rank", "list", str(data), "-o", str(tmp_path / "bad"), *common])
        assert r.exit_code == 1 and "'candidates' must be a non-empty list" in r.output
    finally:
        close_all()


def test_selection_properties_on_random_orders():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.integers(0, 10**6), min_size=1, max_size=20, unique=True))
    def check(quality):
        n = len(quality)
        truth = sorted(range(n), key=lambda k: -quality[k])
        for method in ("knockout", "full", "tournament", "mergesort", "round_robin"):
            calls: list = []
            sel = selection.select(method, n, scripted(quality, calls))
            assert sel.winner == truth[0] and sorted(sel.ranking) == list(range(n))
            made = sum(len(c) for c in calls)
            if method == "mergesort":
                assert made <= n * math.ceil(math.log2(n)) if n > 1 else made == 0
            elif method == "full":
                assert n - 1 <= made <= n * (n - 1) // 2
            else:
                assert made == selection.expected_comparisons(method, n)
            if method in ("full", "mergesort", "round_robin"):
                assert sel.ranking == truth
    check()


def test_verdict_only_reads_the_forced_answer_token(tiny_model):
    """generate.verdict_only (for `label`-objective models): one deterministic sample per order, the verdict is
    the likelier of A/B after the forced `<answer>\\n`, P(A better) is that position's normalised probability."""
    from gramr2_cli.core import prompts, records
    from gramr2_cli.engines.hf import HFEngine
    from gramr2_cli.judging import judge

    eng = HFEngine(str(tiny_model))
    pairs = [records.new_pair("What is 2 + 2?", "4", "5"), records.new_pair("Reverse 'ab'.", "ba", "ab")]
    js = judge.judge_pairs(eng, pairs, orders="both", n=3, verdict_only=True)
    texts = judge.judge_prompts(eng.tokenizer, pairs, ("ab", "ba"), "gramr2-v1")
    ab = eng.answer_probs(texts, [prompts.ANSWER_PREFIX + "A"] * len(texts))
    for i, j in enumerate(js):
        (pa1, pb1), (pa2, pb2) = ab[2 * i], ab[2 * i + 1]
        assert j.parse_ok == 2 and sum(j.votes.values()) == 2
        assert abs(j.p_a - (pa1 + pb2) / 2) < 1e-6
        assert j.samples[0]["verdict"] == ("A" if pa1 >= pb1 else "B")
        assert j.samples[1]["verdict"] == ("B" if pa2 >= pb2 else "A")   # mapped back from the swapped order
