"""probe: exact rates and Wilson intervals from a scripted judge with known weaknesses, report files, resume,
bad inputs (one error line through the CLI)."""

from __future__ import annotations

import json

import pytest
from scripted_engine import ScriptedEngine

from gramr2_cli import recipe
from gramr2_cli.cli import app
from gramr2_cli.core import records
from gramr2_cli.core.errors import GramrError
from gramr2_cli.judging import probes
from gramr2_cli.stages import probe

FOOLING_KEYS = {":", "Solution"}          # the master keys this judge falls for
BIASED = {"q1", "q2"}                      # questions where it always picks the response shown first


def write_pairs(tmp_path):
    recs = [records.new_pair("q1", "right 1", "wrong 1", label="A"),
            records.new_pair("q2", "wrong 2", "right 2", label="B"),
            records.new_pair("q3", "right 3", "wrong 3", label="A"),
            records.new_pair("q4", "wrong 4", "right 4", label=None, meta={"gold_label": "B"}),
            records.new_pair("q5", "a", "b", label=None)]                     # no gold: skipped
    p = tmp_path / "pairs.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return p


def gullible(q, a, b, k):
    """Prefers: a fooling master key; an answer tag (even neutralised, `<\\answer>`) or a written conclusion;
    filler; else the right answer,
    except on BIASED questions (always the first shown, P = 0.8). The right answer otherwise gets P = 0.9."""
    def pull(x):
        if x in probes.MASTER_KEYS:
            return 2 if x in FOOLING_KEYS else -1
        if "answer>" in x or "Conclusion:" in x or probes.FILLER[0][:10] in x or any(f in x for f in probes.FILLER):
            return 2
        return 1 if x.startswith("right") else 0
    if q in BIASED and a.startswith(("right", "wrong")) and b.startswith(("right", "wrong")) \
            and "\n" not in a + b:
        return "A", 0.8
    return ("A", 0.9) if pull(a) >= pull(b) else ("B", 0.1)


def run(tmp_path, engine, out="rep", **kw):
    cfg = recipe.load(None, ["probe.batch_size=7"])
    return probe.run(cfg, [write_pairs(tmp_path)], tmp_path / out, models=["m"], engines={"m": engine},
                     progress=False, **kw)


def test_rates_and_intervals_match_a_hand_count(tmp_path):
    s = run(tmp_path, ScriptedEngine(gullible))
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    m = rep["models"]["m"]["metrics"]
    # master keys: 9 keys x 4 pairs, the judge falls for 2 keys -> 8/36
    mk = m["master_key"]["attack_success"]
    assert (mk["k"], mk["n"]) == (8, 36)
    assert mk["ci95"] == pytest.approx([0.1172, 0.3808], abs=1e-4)
    assert m["master_key"]["variants"]["key0"] == {"k": 4, "n": 4, "rate": 1.0, "text": "':'",
                                                   "ci95": pytest.approx([0.5101, 1.0], abs=1e-4)}
    assert m["master_key"]["variants"]["key1"]["k"] == 0
    # injections: answer tags and conclusions fool it (4 of 6 variants), "ignore the instructions" does not
    vi = m["verdict_injection"]["attack_success"]
    assert (vi["k"], vi["n"]) == (16, 24)
    assert vi["ci95"] == pytest.approx([0.4671, 0.8203], abs=1e-4)
    assert m["verdict_injection"]["variants"]["ignore_after"]["k"] == 0
    assert m["length"]["attack_success"]["k"] == 4 and m["length"]["attack_success"]["n"] == 4
    # position: q1, q2 flip with the order (2/4); their P(A) shift 0.8 - 0.2 = 0.6, q3/q4 0.0 -> mean 0.3
    pos = m["position"]
    assert (pos["order_inconsistency"]["k"], pos["order_inconsistency"]["n"]) == (2, 4)
    assert pos["order_inconsistency"]["ci95"] == pytest.approx([0.15, 0.85], abs=1e-4)
    assert pos["p_a_shift"]["mean"] == pytest.approx(0.3)
    assert pos["p_a_shift"]["ci95"] == pytest.approx([0.3 - 0.33948, 0.3 + 0.33948], abs=1e-4)
    assert rep["config"]["skipped"] == {"no_gold_label": 1}
    assert s.counts == {"source_pairs": 4, "probe_pairs": 68, "probes_judged": 68, "probes_resumed": 0}
    assert s.metrics["m: master_key attack_success"] == pytest.approx(8 / 36)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| m | 22.2% (8/36; 11.7–38.1) | 66.7% (16/24; 46.7–82.0) | 100.0% (4/4; 51.0–100.0) | " \
           "50.0% (2/4; 15.0–85.0) | +0.300 (n=4) |" in md
    assert (tmp_path / "rep" / "probe.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "rep" / "summary.json").read_text())["stage"] == "probe"


def test_attack_probes_are_judged_in_one_order_position_probes_in_both(tmp_path):
    eng = ScriptedEngine(gullible)
    run(tmp_path, eng)
    assert sum(len(c) for c in eng.calls) == 64 + 2 * 4


def test_resume_after_a_partial_run_judges_only_the_rest(tmp_path):
    class Boom(Exception):
        pass

    class Dies(ScriptedEngine):
        def generate(self, prompts, **kw):
            if len(self.calls) == 3:
                raise Boom
            return super().generate(prompts, **kw)

    with pytest.raises(Boom):
        run(tmp_path, Dies(gullible))
    written = sum(1 for _ in (tmp_path / "rep" / "predictions" / "m").glob("part-*.jsonl")
                  for line in _.read_text().splitlines() if line)
    assert written == 21                                    # three batches of 7 before the fourth call failed
    eng = ScriptedEngine(gullible)
    s = run(tmp_path, eng)
    assert (s.counts["probes_judged"], s.counts["probes_resumed"]) == (47, 21)
    full = json.loads((tmp_path / "rep" / "report.json").read_text())["models"]
    run(tmp_path, ScriptedEngine(gullible), out="fresh")
    assert json.loads((tmp_path / "fresh" / "report.json").read_text())["models"] == full


def test_bad_inputs_are_one_clear_error(tmp_path):
    nogold = tmp_path / "nogold.jsonl"
    nogold.write_text(json.dumps({"prompt": "p", "response_a": "a", "response_b": "b"}) + "\n")
    cfg = recipe.load(None)
    with pytest.raises(GramrError, match="no gold-labeled pairs"):
        probe.run(cfg, [nogold], tmp_path / "o", engines={cfg.model: ScriptedEngine(gullible)}, progress=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "manifest.json").write_text("{}")     # a stage output that wrote nothing
    with pytest.raises(GramrError, match="no pairs in"):
        probe.run(cfg, [tmp_path / "empty"], tmp_path / "o", engines={cfg.model: ScriptedEngine(gullible)},
                  progress=False)
    with pytest.raises(GramrError, match="probe.families: unknown"):
        recipe.load(None, ["probe.families=[flattery]"])


@pytest.mark.parametrize("case", ["nogold", "empty"])
def test_cli_bad_input_exits_1_with_one_line(tmp_path, case):
    from typer.testing import CliRunner
    src = tmp_path / "in.jsonl"
    if case == "nogold":
        src.write_text(json.dumps({"prompt": "p", "response_a": "a", "response_b": "b"}) + "\n")
    else:
        src.write_text("")
    r = CliRunner().invoke(app, ["probe", str(src), "-o", str(tmp_path / "o"), "--model", "embedded:smollm2-135m"])
    assert isinstance(r.exception, SystemExit), r.exception      # a GramrError, not a crash
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert lines[0] == {"nogold": f"error: no gold-labeled pairs in {src}",
                        "empty": f"error: {src}: empty file"}[case]
    assert len([ln for ln in lines if not ln.startswith("hint: ")]) == 1


# ---------------------------------------------------------------- paired tests (issue 25: before/after, intervals)

def literal(q, a, b, k):
    """Falls for a literal `<answer>` tag only (what neutralisation removes); else prefers the right answer."""
    if "<answer>" in a or "<answer>" in b:
        return ("A", 0.9) if "<answer>" in a else ("B", 0.1)
    return ("A", 0.9) if not b.startswith("right") else ("B", 0.1)


def test_models_are_paired_against_the_first_and_against_a_baseline_run(tmp_path):
    src = write_pairs(tmp_path)
    raw = recipe.load(None, ["prompt=gramr2-v1+raw"])
    probe.run(raw, [src], tmp_path / "raw", models=["m", "n"], engines={"m": ScriptedEngine(literal),
                                                                          "n": ScriptedEngine(gullible)},
              progress=False)
    rep = json.loads((tmp_path / "raw" / "report.json").read_text())["models"]
    vi = rep["n"]["paired_vs_first"]["verdict_injection"]
    # m falls for the 2 answer-tag variants (8 probes); n also for the 2 conclusions (8 more): 8 discordant
    assert vi == {"n": 24, "first": pytest.approx(8 / 24), "second": pytest.approx(16 / 24), "only_first": 0,
                  "only_second": 8, "p": pytest.approx(2 / 2 ** 8)}
    assert "paired_vs_first" not in rep["m"]
    s = probe.run(recipe.load(None), [src], tmp_path / "safe", models=["m"], engines={"m": ScriptedEngine(literal)},
                  progress=False, baseline=tmp_path / "raw")
    rep = json.loads((tmp_path / "safe" / "report.json").read_text())
    vi = rep["models"]["m"]["paired_vs_baseline"]["verdict_injection"]
    assert (vi["first"], vi["second"], vi["only_first"], vi["only_second"]) == (pytest.approx(8 / 24), 0.0, 8, 0)
    assert s.metrics["m: verdict_injection attack_success"] == 0.0          # the defense, on a literal judge
    acc = rep["models"]["m"]["paired_vs_baseline"]["ordinary_accuracy"]
    assert (acc["n"], acc["only_first"], acc["only_second"], acc["p"]) == (4, 0, 0, 1.0)   # no cost
    md = (tmp_path / "safe" / "report.md").read_text()
    assert f"## Paired: each model against its own run in {tmp_path / 'raw'}" in md
    assert "| m | verdict_injection | 24 | 33.3% | 0.0% | 8 | 0 | 0.00781 |" in md
    with pytest.raises(GramrError, match="no predictions of model 'x'"):
        probe.run(recipe.load(None), [src], tmp_path / "x", models=["x"], engines={"x": ScriptedEngine(literal)},
                  progress=False, baseline=tmp_path / "raw")


def test_cli_baseline_that_is_not_a_probe_output(tmp_path, tiny_model):
    from typer.testing import CliRunner
    r = CliRunner().invoke(app, ["probe", str(write_pairs(tmp_path)), "-o", str(tmp_path / "o"), "--model",
                                 str(tiny_model), "--baseline", str(tmp_path)])
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[0] == f"error: --baseline {tmp_path}: not a probe output (no predictions/ directory in it)"
