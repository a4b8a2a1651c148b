"""The training commands: --help with an example, exit 1 with one line on bad input, a real run's outputs."""

from __future__ import annotations

import json

import pytest
from train_helpers import make_pairs, write_pairs
from typer.testing import CliRunner

from gramr2_cli.cli import app
from gramr2_cli.core import readers, shards

runner = CliRunner()
COMMANDS = ["prover-train", "pretrain", "finetune", "adapt"]


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_an_example(name):
    r = runner.invoke(app, [name, "--help"])
    assert r.exit_code == 0
    assert "Example: gramr2 " + name in " ".join(r.output.split())
    for opt in ("--model", "--config", "--set", "--seed", "--overwrite", "--resume", "--merge-lora"):
        assert opt in r.output


@pytest.mark.parametrize("args,message", [
    (["pretrain", "missing.jsonl", "-o", "OUT"], "missing.jsonl: no such file or directory"),
    (["pretrain", "DATA", "-o", "OUT", "--objective", "dpo"], "train.objective: unknown value 'dpo'"),
    (["adapt", "DATA", "-o", "OUT", "--objective", "pairgen"], "choose from reasoning, label"),
    (["pretrain", "DATA", "-o", "OUT", "-s", "train.lr_rate=1"], "did you mean 'train.lr'"),
    (["pretrain", "DATA", "-o", "OUT", "--model", "no/such-model"], "hub is offline"),
    (["pretrain", "UNLABELED", "-o", "OUT"], "(skipped: {'no_label': 2})"),   # skipped, not fatal
])
def test_bad_input_exits_1_with_one_line(tiny_model, tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = write_pairs(tmp_path / "pairs.jsonl", make_pairs(2))
    unlabeled = write_pairs(tmp_path / "unlabeled.jsonl", [r | {"label": None} for r in make_pairs(2)])
    subst = {"DATA": str(data), "OUT": str(tmp_path / "out"), "UNLABELED": str(unlabeled)}
    args = [subst.get(a, a) for a in args]
    if "--model" not in args:
        args += ["--model", str(tiny_model)]
    r = runner.invoke(app, args)
    assert r.exit_code == 1, r.output
    assert message in " ".join(r.output.split())
    assert r.output.startswith("error:")


def test_pretrain_command_writes_a_finished_model_dir(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAMR2_THREADS", "1")
    data = write_pairs(tmp_path / "pairs.jsonl", [r | {"label": None} for r in make_pairs(4)])
    out = tmp_path / "rm"
    args = ["pretrain", str(data), "-o", str(out), "--model", str(tiny_model), "--objective", "pairgen",
            "--max-steps", "2", "-s", "train.batch_size=2", "--seed", "3"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert shards.is_done(out)
    for f in ("config.json", "model.safetensors", "tokenizer.json", "training_summary.json", "config.yaml"):
        assert (out / f).exists(), f
    man = json.loads((out / "manifest.json").read_text())
    assert man["stage"] == "pretrain" and man["counts"] == {"records": 4, "examples": 4}
    assert json.loads((out / "training_summary.json").read_text())["objective"] == "pairgen"
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_prover_train_then_finetune_chain(tiny_model, tmp_path, monkeypatch):
    """prover-train fixes the objective; finetune starts from a trained output dir given as --model."""
    monkeypatch.setenv("GRAMR2_THREADS", "1")
    data = write_pairs(tmp_path / "pairs.jsonl", make_pairs(4, rationale_every=2))
    common = ["--max-steps", "1", "-s", "train.batch_size=2"]
    r = runner.invoke(app, ["prover-train", str(data), "-o", str(tmp_path / "prover"), "--model", str(tiny_model),
                            *common])
    assert r.exit_code == 0, r.output
    man = json.loads((tmp_path / "prover" / "manifest.json").read_text())
    assert man["stage"] == "prover-train" and man["skipped"] == {"no_rationale": 2}
    assert json.loads((tmp_path / "prover" / "training_summary.json").read_text())["objective"] == "prover"
    r = runner.invoke(app, ["finetune", str(data), "-o", str(tmp_path / "ft"), "--model", str(tmp_path / "prover"),
                            *common])
    assert r.exit_code == 0, r.output
    man = json.loads((tmp_path / "ft" / "manifest.json").read_text())
    assert man["stage"] == "finetune" and man["counts"] == {"records": 4, "examples": 4, "kept:answer_only": 2}


def test_helpsteer3_import_then_prover_train_and_finetune(tiny_model, tmp_path, monkeypatch):
    """Issue 13: HelpSteer3 imported with its human feedback trains the prover (no record skipped) and gives
    finetune a structured Feedback/Comparison/Conclusion target (gram-rr: the authors' "Comparision")."""
    from gramr2_cli.core import models
    from gramr2_cli.train import objectives
    monkeypatch.setenv("GRAMR2_THREADS", "1")
    r = runner.invoke(app, ["data", "import", "tests/fixtures/helpsteer3.jsonl", "--format", "helpsteer3",
                            "-o", str(tmp_path / "hs3")])
    assert r.exit_code == 0, r.output
    common = ["--max-steps", "2", "-s", "train.batch_size=2", "-s", "train.max_length=1024"]
    r = runner.invoke(app, ["prover-train", str(tmp_path / "hs3"), "-o", str(tmp_path / "prover"), "--model",
                            str(tiny_model), *common])
    assert r.exit_code == 0, r.output
    man = json.loads((tmp_path / "prover" / "manifest.json").read_text())
    assert man["skipped"] == {} and man["counts"]["examples"] == 4
    recs = readers.read_all([tmp_path / "hs3"])
    tok = models.load_tokenizer(str(tiny_model))
    built = objectives.build_reasoning(tok, recs[0], "gram-rr")
    target = tok.decode([t for t, lab in zip(built.input_ids, built.labels) if lab != -100])
    assert target.startswith("<think>\nFeedback: Response ") and "\n\nComparision: " in target
    assert f"\n\nConclusion: Response {recs[0]['label']} is better than Response" in target
    r = runner.invoke(app, ["finetune", str(tmp_path / "hs3"), "-o", str(tmp_path / "ft"), "--model",
                            str(tiny_model), "-s", "prompt=gram-rr", *common])
    assert r.exit_code == 0, r.output
    man = json.loads((tmp_path / "ft" / "manifest.json").read_text())
    assert man["counts"] == {"records": 4, "examples": 4}
