"""runner.run_batches, the one batch loop of the model-running stages: order, writes, progress, resume (scripted engine)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from scripted_engine import ScriptedEngine

from gramr2_cli import runner
from gramr2_cli.core import readers, records, shards
from gramr2_cli.core.errors import GramrError
from gramr2_cli.judging import judge


def good_first(q, a, b, k):
    return ("A", 0.8) if a.startswith("good") else ("B", 0.2)


def pairs(n: int) -> list[dict]:
    return [records.new_pair(f"q{i}", f"good {i}", f"bad {i}") for i in range(n)]


@pytest.fixture
def bar(monkeypatch):
    """The progress bar's calls: ("open", total, desc), then ("advance", k) per step."""
    steps = []

    @contextmanager
    def fake(enabled, total, desc):
        steps.append(("open", total, desc))
        yield lambda k=1: steps.append(("advance", k))

    monkeypatch.setattr(runner.progress, "bar", fake)
    return steps


def run(out_dir, recs, eng, seen, batch_size=2):
    how = judge.Settings(votes=1, orders="ab")

    def handle(rec, j):
        seen.append((rec["id"], j.label))
        return dict(rec, label=j.label)

    with shards.open_output(out_dir, stage="loop-test", config={"x": 1}, batch_size=100) as out:
        runner.run_batches(out, recs, lambda batch: how.judge(eng, batch), handle, batch_size=batch_size,
                           progress_on=False, desc="loop")
    return out


def test_each_result_goes_to_the_callback_in_order_and_is_written(tmp_path, bar):
    recs, eng, seen = pairs(5), ScriptedEngine(good_first), []
    run(tmp_path / "o", recs, eng, seen)
    assert seen == [(r["id"], "A") for r in recs]
    assert [len(c) for c in eng.calls] == [2, 2, 1]                  # fixed batches of 2
    assert bar == [("open", 5, "loop")] + [("advance", 1)] * 5
    out = readers.read_all([tmp_path / "o"])
    assert [(r["id"], r["label"]) for r in out] == [(r["id"], "A") for r in recs]


def test_resume_skips_written_ids_and_rejudges_a_half_written_batch_whole(tmp_path, bar):
    recs = pairs(5)
    with shards.open_output(tmp_path / "o", stage="loop-test", config={"x": 1}) as out:   # a killed run's part:
        for r in recs[:3]:                                                               # batch 1 and half of 2
            out.write(dict(r, label="B"))
    eng, seen = ScriptedEngine(good_first), []
    run(tmp_path / "o", recs, eng, seen)
    assert seen == [(recs[3]["id"], "A"), (recs[4]["id"], "A")]       # only what was not written
    assert [[eng.parse(p)[0] for p in c] for c in eng.calls] == [["q2", "q3"], ["q4"]]   # batch 2 whole
    assert bar == [("open", 2, "loop"), ("advance", 1), ("advance", 1)]
    out = readers.read_all([tmp_path / "o"])
    assert [(r["id"], r["label"]) for r in out] == [(r["id"], lab) for r, lab in zip(recs, "BBBAA")]


def test_a_callback_returning_none_writes_nothing_itself(tmp_path, bar):
    recs, eng = pairs(3), ScriptedEngine(good_first)
    how = judge.Settings()
    with shards.open_output(tmp_path / "o", stage="loop-test", config={}) as out:
        def handle(rec, j):
            if rec["id"] == recs[1]["id"]:
                out.write(rec, part="skipped", reasons=["scripted"])
                return None
            return rec
        runner.run_batches(out, recs, lambda b: how.judge(eng, b), handle, batch_size=8, progress_on=False,
                           desc="loop")
    assert [r["id"] for r in readers.read_all([tmp_path / "o"])] == [recs[0]["id"], recs[2]["id"]]
    assert [r["id"] for r in readers.read_all([tmp_path / "o" / "skipped"])] == [recs[1]["id"]]
    assert bar[1:] == [("advance", 1)] * 3


def test_gold_label_has_one_meaning():
    plain = records.new_pair("q", "x", "y", label="A")
    moved = records.new_pair("q", "x", "y", label="A", meta={"gold_label": "B"})
    pseudo = records.new_pair("q", "x", "y", label="A", meta={"provenance": {"self-label": {}}})
    pseudo_gold = records.new_pair("q", "x", "y", label="A", meta={"gold_label": "B", "provenance": {"self-label": {}}})
    none = records.new_pair("q", "x", "y")
    assert [judge.gold_label(r) for r in (plain, moved, pseudo, pseudo_gold, none)] == ["A", "B", None, "B", None]


def test_settings_are_built_once_from_the_recipe():
    from gramr2_cli import recipe
    cfg = recipe.load_recipe(None, ["generate.temperature=0.7", "generate.verdict_only=true", "seed=5"])
    one = judge.settings(cfg, "rank", votes=1, orders="both", tie_break=True)
    many = judge.settings(cfg, "rank", votes=3, orders="ab", tie_break=False)
    own = judge.settings(cfg, "self_label", votes=1, orders="ab", tie_break=False, temperature=0.9)
    assert (one.temperature, many.temperature, own.temperature) == (0.0, 0.7, 0.9)
    assert one.seed == 5 and one.verdict_only is True and one.orders == "both"


def test_settings_and_judge_pairs_check_with_the_sections_validators():
    """No rule of its own: settings runs the generate section's check; judge_pairs guards its arguments with
    the tables of the recipe sections (judge.ORDERS, TRUNCATE_POLICIES)."""
    from gramr2_cli import recipe
    cfg = recipe.load_recipe(None, [])
    cfg.generate.truncate = "cut"                  # built by hand, past `config check`
    with pytest.raises(GramrError, match=r"^generate.truncate: unknown value 'cut'; choose from skip, middle, end$"):
        judge.settings(cfg, "rank", votes=1, orders="ab", tie_break=True)
    with pytest.raises(GramrError, match=r"^orders: unknown value 'ba'; choose from ab, both$"):
        judge.judge_pairs(None, pairs(1), orders="ba")
    with pytest.raises(GramrError, match=r"^truncate: unknown value 'both'; choose from skip, middle, end\nn must be"):
        judge.judge_pairs(None, pairs(1), truncate="both", n=0)
