"""rewardbench2.py: the row → list record conversion and the official scoring rules, by hand."""

from __future__ import annotations

import json
import math

import pytest

from gramr2_cli.core.errors import GramrError
from gramr2_cli.judging import rewardbench2 as rb2

FIXTURE = "tests/fixtures/rewardbench2.jsonl"


def rows():
    return [json.loads(x) for x in open(FIXTURE, encoding="utf-8")]


def test_list_record_keeps_every_answer_and_knows_which_are_correct():
    for row in rows():
        rec = rb2.list_record(row, "r", seed=0)
        assert sorted(rec["candidates"]) == sorted(row["chosen"] + row["rejected"])
        assert sorted(rec["candidates"][k] for k in rec["meta"]["correct"]) == sorted(row["chosen"])
        assert rec["candidates"][rec["meta"]["chosen_index"]] == row["chosen"][0]
        assert rec["meta"]["subset"] == row["subset"] and rec["meta"]["source_id"] == row["id"]
        assert [rec["meta"]["models"][k] for k in rec["meta"]["correct"]] == \
            sorted((row["models"][k] for k in range(row["num_correct"])),
                   key=lambda mdl: rec["meta"]["models"].index(mdl))


def test_shuffle_is_seeded_and_moves_the_chosen_answer():
    recs = [rb2.list_record(r, "r", seed=0) for r in rows()]
    again = [rb2.list_record(r, "r", seed=0) for r in rows()]
    assert recs == again
    positions = [r["meta"]["chosen_index"] for r in recs]
    assert positions == [1, 3, 1, 1, 0, 2, 0, 3, 1, 2]          # not always first (seed 0)
    other = [rb2.list_record(r, "r", seed=1)["meta"]["chosen_index"] for r in rows()]
    assert other != positions


def test_bad_rows_are_errors():
    row = rows()[0]
    with pytest.raises(GramrError, match="num_correct is 2"):
        rb2.list_record(dict(row, num_correct=2), "f line 1")
    with pytest.raises(GramrError, match="'rejected' must be a non-empty list"):
        rb2.list_record(dict(row, rejected=[]), "f line 1")
    with pytest.raises(GramrError, match="'ref:N' or 'tied:N'"):
        rb2.list_record(dict(row, subset="Ties", id="7"), "f line 1")


def test_best_of_n_result_penalises_ties_at_the_top():
    assert rb2.best_of_n_result([0.2, 0.9, 0.1, 0.3], 1) == 1.0
    assert rb2.best_of_n_result([0.9, 0.9, 0.1, 0.3], 1) == 0.5
    assert rb2.best_of_n_result([0.5, 0.5, 0.5, 0.5], 3) == 0.25
    assert rb2.best_of_n_result([0.9, 0.2, 0.1, 0.3], 1) == 0.0


def test_candidate_scores():
    comps = [(0, 1, 0.8), (0, 2, 0.5), (1, 2, 0.3)]
    # win rate: 0 beats 1, half with 2 → 1.5/2; 1 loses both → 0; 2 half with 0, beats 1 → 1.5/2
    assert rb2.candidate_scores(3, comps, "win_rate") == [0.75, 0.0, 0.75]
    # mean P: 0 → (0.8 + 0.5)/2; 1 → (0.2 + 0.3)/2; 2 → (0.5 + 0.7)/2
    assert rb2.candidate_scores(3, comps, "mean_p") == [pytest.approx(0.65), pytest.approx(0.25), pytest.approx(0.6)]
    with pytest.raises(GramrError, match="unknown candidate score"):
        rb2.candidate_scores(3, comps, "elo")


def test_ties_score_by_hand():
    rows_ = [
        ("ref:0", [(True, 5.0), (False, 1.0), (False, 0.0)]),                 # accurate, margin 4
        ("tied:0", [(True, 5.0), (True, 4.0), (False, 1.0)]),                 # accurate, spread 1, margin 3
        ("ref:1", [(True, 0.0), (False, 1.0)]),                               # not accurate, margin −1
        ("tied:1", [(True, 3.0), (True, 1.0), (False, 2.0)]),                 # not accurate, spread 2, margin −1
    ]
    out = rb2.ties_score(rows_)
    assert (out["ref_accuracy"], out["tied_accuracy"]) == (0.5, 0.5)
    assert out["correctness_preferred"] == 0.5            # prompt 0: 3 > 1; prompt 1: −1 < 2
    assert out["correctness_preferred_hard"] == 0.5       # min(4, 3) = 3 > 1; min(−1, −1) < 2
    margin = (math.tanh(3 / 1 - 1) + math.tanh(-1 / 2 - 1)) / 2
    assert out["correctness_margin_score"] == pytest.approx(margin)
    assert out["score"] == pytest.approx(0.3 * 0.5 + 0.3 * 0.5 + 0.2 * 0.5 + 0.2 * 0.5 + 0.01 * margin)


def test_ties_score_edge_cases_follow_numpy():
    # spread 0: margin/0 = +inf → tanh 1; 0/0 = nan → 0
    pos = rb2.ties_score([("ref:0", [(True, 2.0), (False, 1.0)]), ("tied:0", [(True, 2.0), (True, 2.0), (False, 1.0)])])
    assert pos["correctness_margin_score"] == 1.0 and pos["correctness_preferred"] == 1.0
    zero = rb2.ties_score([("ref:0", [(True, 1.0), (False, 1.0)]), ("tied:0", [(True, 1.0), (True, 1.0), (False, 1.0)])])
    assert zero["correctness_margin_score"] == 0.0 and zero["correctness_preferred"] == 0.0
    alone = rb2.ties_score([("tied:3", [(True, 2.0), (True, 1.0), (False, 0.0)])])
    assert alone["tied_accuracy"] == 1.0 and alone["ref_accuracy"] == 0.0 and alone["score"] is None


def test_overall_is_the_unweighted_mean_of_the_subsets():
    six = dict(zip(rb2.SUBSETS, [0.5, 0.5, 1.0, 0.0, 1.0, 0.65]))
    assert rb2.overall(six) == {"score": pytest.approx(3.65 / 6), "subsets": 6, "complete": True}
    assert rb2.overall({"Math": 1.0, "Ties": None}) == {"score": 1.0, "subsets": 1, "complete": False}


@pytest.mark.parametrize("fmt", ["auto", "rewardbench"])
def test_data_import_refuses_rewardbench2_rows(tmp_path, fmt):
    from gramr2_cli.core import formats
    from gramr2_cli.stages import data_import
    with pytest.raises(GramrError, match="line 1: a RewardBench 2 row") as e:
        data_import.run(formats.ImportConfig(format=fmt), [FIXTURE], tmp_path / "out")
    assert "gramr2 evaluate FILE" in e.value.hint
