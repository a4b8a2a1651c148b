"""Issue 8 item 3: the bad-input matrix (docs/errors.md is its table). Each bad input either fails with exit 1
and exactly one `error:` line (plus at most one `hint:` line) on stderr and no traceback, or succeeds (exit 0)
with the problem counted in summary.json. In-process through typer's CliRunner; no subprocess needed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gramr2_cli.cli import app

runner = CliRunner()

GOOD = {"prompt": "What is 2 + 2?", "response_a": "4", "response_b": "5", "label": "A"}


def invoke(*args) -> tuple[int, str]:
    r = runner.invoke(app, [str(a) for a in args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise AssertionError(f"uncaught {type(r.exception).__name__}: {r.exception}") from r.exception
    return r.exit_code, r.stderr


def assert_one_error(code: int, err: str, pattern: str) -> str:
    """Exit 1, exactly one `error:` line matching `pattern`, at most one `hint:` line, nothing else."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1, err
    assert "Traceback" not in err
    errors = [ln for ln in lines if ln.startswith("error: ")]
    hints = [ln for ln in lines if ln.startswith("hint: ")]
    assert len(errors) == 1 and len(hints) <= 1 and len(lines) == len(errors) + len(hints), err
    assert re.search(pattern, errors[0]), errors[0]
    return errors[0]


def jsonl(path: Path, *rows) -> Path:
    path.write_bytes(b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows))
    return path


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


# ---------------------------------------------------------------- record files (read by every stage)

BAD_RECORDS = {
    "missing column": ([{"prompt": "p", "response_a": "a"}], r"line 1: missing field 'response_b'"),
    "empty prompt": ([{**GOOD, "prompt": ""}], r"line 1: 'prompt' is empty"),
    "blank response": ([{**GOOD, "response_b": "   "}], r"line 1: 'response_b' is empty"),
    "non-string response": ([{**GOOD, "response_a": 4}], r"line 1: 'response_a' must be a string, got int"),
    "label C": ([{**GOOD, "label": "C"}], r"""line 1: 'label' must be "A", "B" or null, got 'C'"""),
    "label lowercase": ([{**GOOD, "label": "a"}], r"""'label' must be "A", "B" or null, got 'a'"""),
    "label with rich markup": ([{**GOOD, "label": "[/x]"}], r"got '\[/x\]'"),   # was a MarkupError traceback
    "label number": ([GOOD, {**GOOD, "prompt": "q", "label": 1}], r"line 2: 'label' must be .* got 1"),
    "not an object": ([GOOD, "just text"], r"line 2: expected a JSON object, got str"),
    "non-UTF-8 bytes": ([b'{"prompt": "caf\xe9", "response_a": "a", "response_b": "b"}'],
                        r"line 1: not valid UTF-8 \(byte \d+\)"),
    "invalid JSON mid-file": ([b'{"prompt": "p",, }', GOOD], r"line 1: invalid JSON"),
}


@pytest.mark.parametrize("case", list(BAD_RECORDS))
def test_bad_record_is_one_error_line(case, tmp_path):
    rows, pattern = BAD_RECORDS[case]
    src = jsonl(tmp_path / "in.jsonl", *rows)
    code, err = invoke("filter", src, "-o", tmp_path / "out")
    line = assert_one_error(code, err, pattern)
    assert str(src) in line                       # names the file (and the line)


def test_truncated_last_line_is_named_as_truncated(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(json.dumps(GOOD).encode() + b'\n{"prompt": "q", "resp')
    code, err = invoke("filter", src, "-o", tmp_path / "out")
    assert_one_error(code, err, r"line 2: truncated JSON line \(the file ends mid-record\)")


def test_empty_file_and_empty_json_array(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert_one_error(*invoke("filter", empty, "-o", tmp_path / "o1"), r"empty\.jsonl: empty file")
    blank = tmp_path / "blank.jsonl"
    blank.write_bytes(b"\n  \n")
    assert_one_error(*invoke("filter", blank, "-o", tmp_path / "o2"), r"blank\.jsonl: empty file")
    arr = tmp_path / "arr.json"
    arr.write_text("[]")                          # a valid, empty dataset: success with 0 records
    code, err = invoke("filter", arr, "-o", tmp_path / "o3")
    assert code == 0, err
    assert summary(tmp_path / "o3")["counts"] == {}


def test_extra_columns_are_kept_in_meta(tmp_path):
    src = jsonl(tmp_path / "in.jsonl", {**GOOD, "category": "math", "difficulty": 3})
    code, err = invoke("filter", src, "-o", tmp_path / "out", "-s", "filter.rules=no_label",
                       "-s", "filter.balance_ab=false")
    assert code == 0, err
    (rec,) = [json.loads(x) for x in (tmp_path / "out" / "part-00000-of-00001.jsonl").read_text().splitlines()]
    assert rec["meta"]["extra"] == {"category": "math", "difficulty": 3}


def test_duplicate_ids_are_counted_skips(tmp_path):
    src = jsonl(tmp_path / "in.jsonl", GOOD, {**GOOD, "meta": {"x": 1}}, GOOD, {**GOOD, "prompt": "other"})
    code, err = invoke("filter", src, "-o", tmp_path / "out", "-s", "filter.rules=no_label",
                       "-s", "filter.balance_ab=false")
    assert code == 0, err
    s = summary(tmp_path / "out")
    assert s["skipped"] == {"duplicate_id": 2} and s["counts"]["out"] == 2
    # an explicit id repeated with different content is a duplicate too (the first one wins)
    src2 = jsonl(tmp_path / "in2.jsonl", {**GOOD, "id": "x1"}, {**GOOD, "id": "x1", "prompt": "else"})
    assert invoke("filter", src2, "-o", tmp_path / "out2", "-s", "filter.rules=no_label")[0] == 0
    assert summary(tmp_path / "out2")["skipped"] == {"duplicate_id": 1}


# ---------------------------------------------------------------- importer (external columns)

def test_import_missing_column_names_the_columns_present(tmp_path):
    src = jsonl(tmp_path / "pcr.jsonl", {"prompt": "p", "chosen": "a"})
    code, err = invoke("data", "import", src, "--format", "pairs", "-o", tmp_path / "out")
    assert_one_error(code, err, r"line 1: missing column 'rejected' \(format pairs\)")
    assert "hint: columns present: prompt, chosen" in err


def test_import_extra_columns_go_to_meta(tmp_path):
    src = jsonl(tmp_path / "pcr.jsonl", {"prompt": "p", "chosen": "a", "rejected": "b", "topic": "t", "id": 7})
    code, err = invoke("data", "import", src, "--format", "pairs", "-o", tmp_path / "out")
    assert code == 0, err
    (rec,) = [json.loads(x) for x in (tmp_path / "out" / "part-00000-of-00001.jsonl").read_text().splitlines()]
    assert rec["meta"]["topic"] == "t" and rec["meta"]["source_id"] == 7


def test_import_non_utf8_and_truncated(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"prompt": "p\xff", "chosen": "a", "rejected": "b"}\n')
    assert_one_error(*invoke("data", "import", bad, "--format", "pairs", "-o", tmp_path / "o1"), "not valid UTF-8")
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p2", "cho')
    assert_one_error(*invoke("data", "import", cut, "--format", "pairs", "-o", tmp_path / "o2"), "truncated JSON")


# ---------------------------------------------------------------- outputs, models, recipes

def test_output_dir_with_a_different_config(tmp_path):
    src = jsonl(tmp_path / "in.jsonl", GOOD)
    assert invoke("filter", src, "-o", tmp_path / "out")[0] == 0
    code, err = invoke("filter", src, "-o", tmp_path / "out", "-s", "filter.min_agreement=0.5")
    assert_one_error(code, err, r"holds output of 'filter' with a different config \(hash \w+ != \w+\)")
    assert "hint: use --overwrite" in err
    assert invoke("filter", src, "-o", tmp_path / "out", "-s", "filter.min_agreement=0.5", "--overwrite")[0] == 0


def test_output_dir_of_another_stage_and_foreign_dir(tmp_path):
    src = jsonl(tmp_path / "in.jsonl", GOOD)
    assert invoke("data", "merge", src, "-o", tmp_path / "out")[0] == 0
    assert_one_error(*invoke("filter", src, "-o", tmp_path / "out"), r"holds output of 'merge'")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert_one_error(*invoke("filter", src, "-o", tmp_path / "mine"), r"is not empty and has no manifest\.json")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


MODEL_CMDS = {
    "rank pairs": lambda src, m, o: ["rank", "pairs", src, "--model", m, "-o", o, "--engine", "hf"],
    "self-label": lambda src, m, o: ["self-label", src, "--model", m, "-o", o, "--engine", "hf"],
    "evaluate": lambda src, m, o: ["evaluate", src, "--model", m, "-o", o, "--engine", "hf"],
    "prove": lambda src, m, o: ["prove", src, "--prover", m, "-o", o, "--engine", "hf"],
    "pretrain": lambda src, m, o: ["pretrain", src, "--model", m, "-o", o],
    "serve": lambda src, m, o: ["serve", "--model", m, "--engine", "hf", "--port", "8765"],   # fails before binding
}


@pytest.mark.parametrize("cmd", list(MODEL_CMDS))
def test_missing_model_path(cmd, tmp_path):
    src = jsonl(tmp_path / "in.jsonl", GOOD)
    code, err = invoke(*MODEL_CMDS[cmd](src, tmp_path / "no-such-model", tmp_path / "out"))
    assert_one_error(code, err, r"no-such-model'?: no such directory")


def test_model_dir_without_config_json(tmp_path):
    src = jsonl(tmp_path / "in.jsonl", GOOD)
    (tmp_path / "m").mkdir()
    code, err = invoke("rank", "pairs", src, "--model", tmp_path / "m", "-o", tmp_path / "out", "--engine", "hf")
    assert_one_error(code, err, r"not a model directory \(no config\.json\)")


def test_unknown_recipe_keys(tmp_path):
    src = jsonl(tmp_path / "in.jsonl", GOOD)
    code, err = invoke("filter", src, "-o", tmp_path / "o1", "-s", "filter.min_agreemnt=0.5")
    assert_one_error(code, err, r"unknown config key 'filter\.min_agreemnt' \(did you mean 'filter\.min_agreement'")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("generate:\n  bogus: 1\n")
    assert_one_error(*invoke("filter", src, "-o", tmp_path / "o2", "-c", recipe), r"unknown config key 'generate\.bogus'")
    assert_one_error(*invoke("filter", src, "-o", tmp_path / "o3", "-c", tmp_path / "none.yaml"), "recipe not found")
    assert_one_error(*invoke("filter", src, "-o", tmp_path / "o4", "-s", "filter.min_agreement=lots"),
                     r"config key 'filter\.min_agreement': expected float")
    assert not (tmp_path / "o1").exists()         # nothing written before the config is valid


def test_missing_input_path(tmp_path):
    assert_one_error(*invoke("filter", tmp_path / "nope.jsonl", "-o", tmp_path / "o"), "no such file or directory")


# ---------------------------------------------------------------- prompts longer than the model's context

def test_prompt_longer_than_context_is_skipped_and_counted(tmp_path, tiny_model):
    """The tiny model has max_position_embeddings 2048; a 3000-word prompt is ~6000 tokens. It is not judged:
    the pair is written with label null and reason too_long_for_context, the other pair is judged, exit 0."""
    long = {"prompt": "word " * 3000, "response_a": "yes", "response_b": "no", "label": "A"}
    src = jsonl(tmp_path / "in.jsonl", long, GOOD)
    # rank keeps the record's own (gold) label; self-label writes its pseudo-label, none for a skipped pair
    for cmd, label in ((["rank", "pairs"], "A"), (["self-label", "--samples", "1"], None)):
        out = tmp_path / cmd[0]
        code, err = invoke(*cmd, src, "--model", tiny_model, "-o", out, "--engine", "hf", "--no-progress",
                           "-s", "generate.max_new_tokens=4")
        assert code == 0, err
        assert "Traceback" not in err
        assert summary(out)["counts"]["out"] == 2
        recs = {json.loads(x)["prompt"][:4]: json.loads(x) for x in
                (out / "part-00000-of-00001.jsonl").read_text().splitlines()}
        j = recs["word"]["meta"]["judgment"]
        assert j["reason"] == "too_long_for_context" and j["votes"] == {"A": 0, "B": 0, "null": 0}
        assert recs["word"]["label"] == label
        assert recs[GOOD["prompt"][:4]]["meta"]["judgment"]["reason"] != "too_long_for_context"


# ---------------------------------------------------------------- a corrupt training checkpoint

SETS = ["train.max_steps=4", "train.save_steps=1", "train.batch_size=2", "train.warmup_ratio=0"]


@pytest.fixture(scope="module")
def killed_training(tiny_model, tmp_path_factory):
    """A pretrain run stopped right after its first checkpoint (as a kill would leave it)."""
    import torch
    from transformers import TrainerCallback

    from gramr2_cli import recipe
    from gramr2_cli.stages import synth
    from gramr2_cli.train import core

    d = tmp_path_factory.mktemp("train")
    data = d / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in synth.generate(synth.SynthConfig(n=8), seed=0)["labeled"]))

    class Stop(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            raise KeyboardInterrupt

    torch.set_num_threads(1)
    with pytest.raises(KeyboardInterrupt):
        core.train(recipe.load(None, SETS, model=str(tiny_model)), [data], d / "run", stage="pretrain",
                   callbacks=[Stop()])
    ckpt = core.latest_checkpoint(d / "run")
    assert ckpt is not None and ckpt.name == "checkpoint-1"
    return data, d / "run"


@pytest.mark.xdist_group("killed_training")   # one worker trains the module's checkpoint once (under xdist)
@pytest.mark.parametrize("file,damage", [("model.safetensors", "truncate"), ("model.safetensors", "garbage"),
                                         ("optimizer.pt", "truncate"), ("trainer_state.json", "garbage")])
def test_resume_from_corrupt_checkpoint_is_one_error_line(file, damage, killed_training, tiny_model, tmp_path):
    import shutil
    data, run = killed_training
    out = tmp_path / "run"
    shutil.copytree(run, out)
    f = out / "checkpoints" / "checkpoint-1" / file
    blob = f.read_bytes()
    f.write_bytes(blob[:len(blob) // 2] if damage == "truncate" else b"\x00garbage\xff" * 16)
    sets = [x for s in SETS for x in ("-s", s)]
    code, err = invoke("pretrain", data, "--model", tiny_model, "-o", out, *sets, "--resume")
    assert_one_error(code, err, rf"checkpoint-1: corrupt checkpoint \({re.escape(file)}: ")
    assert "hint: delete" in err


def test_user_text_that_looks_like_rich_markup(tmp_path, monkeypatch):
    """Paths and values are printed as text: '[/x]' used to raise rich's MarkupError (a traceback, after the
    stage had finished) and '[red]' used to vanish from the summary table and error lines."""
    monkeypatch.chdir(tmp_path)                      # short relative paths: the table is 80 columns wide here
    src = jsonl(tmp_path / "in.jsonl", GOOD)
    for name in ("o[/x]", "o[red]"):
        code, err = invoke("filter", src, "-o", name, "-s", "filter.balance_ab=false")
        assert code == 0, err
        assert name in err                           # the output path in the summary table, whole
    # one outer [..] is list syntax (-s key=[a,b]); the inner brackets stay part of the rule's name
    code, err = invoke("filter", src, "-o", tmp_path / "o2", "-s", "filter.rules=[[no_label]]")
    assert_one_error(code, err, r"unknown rule\(s\) \[no_label\]; choose from")
