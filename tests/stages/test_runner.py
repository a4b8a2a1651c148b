"""runner: the one definition of what is left, the engine lifecycle around the batch loop, the multi-model loop
(scripted engine, no model)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from scripted_engine import ScriptedEngine

from gramr2_cli import recipe, runner
from gramr2_cli.core import readers, records, shards
from gramr2_cli.core.errors import GramrError
from gramr2_cli.judging import judge


def good_first(q, a, b, k):
    return ("A", 0.8) if a.startswith("good") else ("B", 0.2)


def pairs(n: int) -> list[dict]:
    return [records.new_pair(f"q{i}", f"good {i}", f"bad {i}") for i in range(n)]


def test_left_is_what_the_output_has_not_written_in_input_order(tmp_path):
    recs = pairs(5)
    with runner.open_output(tmp_path / "o", stage="t", config={}) as out:
        for r in (recs[3], recs[0]):
            out.write(r)
    with runner.open_output(tmp_path / "o", stage="t", config={}) as out:
        assert [r["id"] for r in runner.left(out, recs)] == [recs[i]["id"] for i in (1, 2, 4)]


def test_read_left_reads_every_record_and_counts_the_written_ones(tmp_path):
    recs = pairs(4)
    shards.write_records(tmp_path / "in", recs, stage="t", config={})
    with runner.open_output(tmp_path / "o", stage="t", config={}) as out:
        out.write(recs[1])
    with runner.open_output(tmp_path / "o", stage="t", config={}) as out:
        every, todo = runner.read_left(out, [tmp_path / "in"])
        assert [r["id"] for r in every] == [r["id"] for r in recs]
        assert [r["id"] for r in todo] == [recs[i]["id"] for i in (0, 2, 3)]
    assert out.summary().skipped == {"already_done": 1}


def test_run_model_loads_no_engine_when_nothing_is_left(tmp_path, monkeypatch):
    loaded = []
    monkeypatch.setattr(runner, "recipe_engine", lambda cfg, model=None: loaded.append(model) or ScriptedEngine(good_first))
    cfg = recipe.load_recipe(None, [])
    recs, how = pairs(3), judge.Settings()
    handle = lambda rec, j: dict(rec, label=j.label)   # noqa: E731
    with runner.open_output(tmp_path / "o", stage="t", config={}) as out:
        todo = runner.run_model(out, cfg, recs, how.judge, handle, model="m1", batch_size=2, progress_on=False,
                                desc="t")
    assert (len(todo), loaded) == (3, ["m1"])
    with runner.open_output(tmp_path / "o", stage="t", config={}) as out:
        todo = runner.run_model(out, cfg, recs, how.judge, handle, model="m1", batch_size=2, progress_on=False,
                                desc="t")
    assert (todo, loaded) == ([], ["m1"])                # a finished output: nothing judged, nothing loaded
    assert [r["label"] for r in readers.read_all([tmp_path / "o"])] == ["A", "A", "A"]


def test_each_model_writes_one_resumable_shard_per_model(tmp_path):
    cfg = recipe.load_recipe(None, [])
    engines = {"a": ScriptedEngine(good_first), "b": ScriptedEngine(lambda q, a, b, k: ("B", 0.1))}
    specs, slugs = runner.models(cfg, ["a", "b"], engines, tmp_path / "r", "t")
    recs, how = pairs(3), judge.Settings()
    got = list(runner.each_model(cfg, specs, slugs, tmp_path / "r", recs, stage="t", section="rank", inputs=[],
                                 work=how.judge, handle=lambda rec, j: dict(rec, label=j.label), batch_size=2,
                                 given=engines, progress_on=False))
    assert [(s, n, d.name, st) for s, n, d, st in got] == [("a", "a", "a", {"judged": 3, "resumed": 0}),
                                                          ("b", "b", "b", {"judged": 3, "resumed": 0})]
    assert [r["label"] for r in readers.read_all([tmp_path / "r" / "predictions" / "b"])] == ["B"] * 3
    again = list(runner.each_model(cfg, specs, slugs, tmp_path / "r", recs, stage="t", section="rank", inputs=[],
                                   work=how.judge, handle=lambda rec, j: rec, batch_size=2, given=engines,
                                   progress_on=False))
    assert [st for *_, st in again] == [{"judged": 0, "resumed": 3}] * 2


def test_the_report_preamble_refuses_a_repeated_model_and_stdout(tmp_path):
    cfg = recipe.load_recipe(None, [])
    with pytest.raises(GramrError, match=r"--model given twice"):
        runner.models(cfg, ["a", "a"], {"a": None}, tmp_path, "evaluate")
    with pytest.raises(GramrError, match=r"probe writes a report directory"):
        runner.models(cfg, ["a"], {"a": None}, "-", "probe")
    assert runner.model_slugs(["x/m", "x:m"]) == ["x-m", "x-m-2"]


def test_judge_is_pure_judging():
    """judge holds no engine lifecycle, output or batch loop, and importing it loads no engine backend."""
    for name in ("engine", "run_batches", "fixed_batches"):
        assert not hasattr(judge, name)
    code = "import sys, gramr2_cli.judging.judge; print(sorted(m for m in ('torch', 'vllm', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def _trained_dir(tmp_path, prompt_line: str | None):
    d = tmp_path / "rm"
    d.mkdir()
    (d / "config.json").write_text("{}")
    if prompt_line is not None:
        (d / "config.yaml").write_text(f"model: embedded:smollm2-135m\n{prompt_line}\nseed: 0\n")
    return d


def test_a_model_judged_with_another_prompt_than_it_was_trained_on_is_warned(tmp_path, monkeypatch):
    d = _trained_dir(tmp_path, "prompt: gramr2-short")
    loaded = []
    monkeypatch.setattr(runner.engines, "load_engine", lambda m, g, s: loaded.append(m) or "engine")
    with pytest.warns(UserWarning, match=r"trained with prompt 'gramr2-short' but is judging with 'gramr2-v1'; "
                                          r"add -s prompt=gramr2-short"):
        assert runner.recipe_engine(recipe.load_recipe(), str(d)) == "engine"
    assert loaded == [str(d)]
    for same in ("gramr2-short", "gramr2-short+raw"):    # the same prompt, or its undefended twin: no warning
        assert runner.prompt_mismatch(recipe.load_recipe(overrides=[f"prompt={same}"]), str(d)) is None


@pytest.mark.parametrize("line", [None, "seed: 1", "prompt: ''"])
def test_no_prompt_warning_without_a_recorded_training_prompt(tmp_path, line):
    d = _trained_dir(tmp_path, line)
    assert runner.prompt_mismatch(recipe.load_recipe(), str(d)) is None
    assert runner.prompt_mismatch(recipe.load_recipe(), "embedded:smollm2-135m") is None


def test_fixed_batches_cut_at_size_and_a_group_never_straddles_two_batches():
    recs = [{"id": str(i), "g": g} for i, g in enumerate("aabbbcdd")]
    cut = [[r["id"] for r in b] for b in runner.fixed_batches(recs, 3, set())]
    assert cut == [["0", "1", "2"], ["3", "4", "5"], ["6", "7"]]
    grouped = [[r["g"] for r in b] for b in runner.fixed_batches(recs, 3, set(), group=lambda r: r["g"])]
    assert grouped == [["a", "a", "b", "b", "b"], ["c", "d", "d"]]
    assert [[r["g"] for r in b] for b in runner.fixed_batches(recs, 1, set(), group=lambda r: r["g"])] == \
        [["a", "a"], ["b", "b", "b"], ["c"], ["d", "d"]]
    # resume: a fully written batch is left out, the others are cut as in the uninterrupted run
    done = {"0", "1", "2", "3", "4"}
    assert [[r["id"] for r in b] for b in runner.fixed_batches(recs, 3, done, group=lambda r: r["g"])] == \
        [["5", "6", "7"]]


def test_twins_adjacent_groups_both_orders_of_a_pair():
    x, y = records.new_pair("q", "a", "b"), records.new_pair("r", "c", "d")
    x2, y2 = records.new_pair("q", "b", "a"), records.new_pair("r", "d", "c")
    z = records.new_pair("q", "a", "c")          # same prompt, other responses: not a twin
    got = records.twins_adjacent([x, y, z, y2, x2])
    assert [r["id"] for r in got] == [r["id"] for r in (x, x2, y, y2, z)]
    assert records.twin_key(x) == records.twin_key(x2) != records.twin_key(z)
