"""`gramr2 config check`: every section's own check runs, every problem is reported (one `error:` line each),
and the stages agree with it (issue 12 item 1, issue 17 item 11)."""

import pytest
from typer.testing import CliRunner

from gramr2_cli.cli import app

runner = CliRunner()


def errors_of(result) -> list[str]:
    return [x for x in result.output.splitlines() if x.strip()]


def test_three_mistakes_give_three_errors(tmp_path):
    rec = tmp_path / "r.yaml"
    rec.write_text("prove:\n  k: 0\nserve:\n  port: 99999\ntrain:\n  lr_rate: 1\n")
    r = runner.invoke(app, ["config", "check", str(rec)])
    assert r.exit_code == 1
    assert errors_of(r) == [
        "error: unknown config key 'train.lr_rate' (did you mean 'train.lr', 'train.lora.r', "
        "'train.warmup_ratio'?)",
        "error: prove.k must be >= 1, got 0",
        "error: serve.port must be in 1..65535, got 99999",
    ]


@pytest.mark.parametrize("override, error", [
    ("prove.k=0", "prove.k must be >= 1, got 0"),
    ("evaluate.votes=-1", "evaluate.votes must be >= 1, got -1"),
    ("rank.votes=0", "rank.votes must be >= 1, got 0"),
    ("serve.votes=0", "serve.votes must be >= 1, got 0"),
    ("self_label.samples=0", "self_label.samples must be >= 1, got 0"),
    ("serve.port=0", "serve.port must be in 1..65535, got 0"),
    ("train.precision=fp8", "train.precision: unknown value 'fp8'; choose from auto, fp32, bf16"),
    ("self_label.orders=ba", "self_label.orders: unknown value 'ba'; choose from ab, both"),
    ("rank.orders=ba", "rank.orders: unknown value 'ba'; choose from ab, both"),
    ("evaluate.orders=ba", "evaluate.orders: unknown value 'ba'; choose from ab, both"),
    ("serve.orders=ba", "serve.orders: unknown value 'ba'; choose from ab, both"),
    ("filter.rules=no_label,bogus", "filter.rules: unknown rule(s) bogus; choose from no_label, agreement, "
                                    "confidence, order_consistency, no_rationale, too_long, "
                                    "label_not_in_conclusion, broken_structure"),
    ("synth.n=0", "synth.n must be >= 1, got 0"),
])
def test_each_bad_value_is_one_error(override, error):
    r = runner.invoke(app, ["config", "check", "recipes/demo.yaml", "-s", override])
    assert (r.exit_code, errors_of(r)) == (1, [f"error: {error}"])


def test_unknown_synth_family():
    r = runner.invoke(app, ["config", "check", "recipes/synth.yaml", "-s", "synth.families=easy,nope"])
    assert r.exit_code == 1
    (line,) = errors_of(r)
    assert line.startswith("error: synth.families: unknown family 'nope'; choose from ")


def test_synth_family_named_in_both_is_reported_and_all_is_fine():
    # a held-out family named one by one in the main mix contradicts the adapt splits; `all` leaves them out
    r = runner.invoke(app, ["config", "check", "recipes/synth.yaml", "-s", "synth.families=easy,unit_convert"])
    assert r.exit_code == 1
    (line,) = errors_of(r)
    assert line.startswith("error: synth.families: family 'unit_convert' is in both synth.families and synth.adapt")
    r = runner.invoke(app, ["config", "check", "recipes/synth.yaml", "-s", "synth.families=all"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("override", ["serve.port=65535", "serve.port=1", "rank.orders=both", "prove.k=1",
                                      "train.precision=bf16", "evaluate.votes=3"])
def test_edge_values_pass(override):
    r = runner.invoke(app, ["config", "check", "recipes/demo.yaml", "-s", override])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("cmd", [["self-label", "{inp}", "-o", "{out}"], ["rank", "pairs", "{inp}", "-o", "{out}"],
                                 ["evaluate", "{inp}", "-o", "{out}"]])
def test_stage_commands_reject_what_config_check_rejects(tmp_path, cmd):
    """`orders: ba` fails in the stage exactly as in `config check`, before a model is loaded or a file written."""
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"prompt": "p", "response_a": "a", "response_b": "b", "label": "A"}\n')
    section = {"self-label": "self_label", "rank": "rank", "evaluate": "evaluate"}[cmd[0]]
    args = [a.format(inp=inp, out=tmp_path / "o") for a in cmd]
    r = runner.invoke(app, [*args, "-s", f"{section}.orders=ba", "--model", "no/such/model"])
    want = f"error: {section}.orders: unknown value 'ba'; choose from ab, both"
    assert (r.exit_code, errors_of(r)) == (1, [want])
    assert not (tmp_path / "o").exists()


# one validator per rule (issue 24 point 2): each closed choice is one table, checked once in its section's
# check(); a value that breaks the rule is one line, whichever sections and helpers use the value
@pytest.mark.parametrize("override, error", [
    ("generate.truncate=cut", "generate.truncate: unknown value 'cut'; choose from skip, middle, end"),
    ("rank.method=bubble", "rank.method: unknown value 'bubble'; choose from knockout, full, tournament, mergesort, "
                           "round_robin"),
    ("evaluate.list_method=full", "evaluate.list_method: unknown value 'full'; choose from round_robin, knockout"),
    ("serve.orders=xyz", "serve.orders: unknown value 'xyz'; choose from ab, both"),
    ("serve.pairing=swiss", "serve.pairing: unknown value 'swiss'; choose from reference, round_robin, circular, "
                            "knockout"),
    ("serve.score=elo", "serve.score: unknown value 'elo'; choose from p_a, win_rate, bt"),
    ("serve.votes=0", "serve.votes must be >= 1, got 0"),
    ("probe.votes=0", "probe.votes must be >= 1, got 0"),
])
def test_each_rule_is_reported_once(override, error):
    r = runner.invoke(app, ["config", "check", "recipes/demo.yaml", "-s", override])
    assert (r.exit_code, errors_of(r)) == (1, [f"error: {error}"])


def test_rank_list_reports_a_bad_method_with_the_sections_check(tmp_path):
    """rank list does not re-check rank.method with its own message: the section's check (config.ensure) runs,
    for a config built by hand as for one from a recipe."""
    from gramr2_cli import recipe
    from gramr2_cli.core.errors import GramrError
    from gramr2_cli.stages import rank_list
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"prompt": "p", "candidates": ["a", "b"]}\n')
    cfg = recipe.load_recipe(None, [])
    cfg.rank.method = "bubble"
    with pytest.raises(GramrError) as e:
        rank_list.run(cfg, [inp], tmp_path / "o", engine=object())
    assert e.value.message == ("rank.method: unknown value 'bubble'; choose from knockout, full, tournament, "
                               "mergesort, round_robin")
    assert not (tmp_path / "o").exists()
