"""One writer per output, and never an output on top of an input (issue 27 items 2, 8, 10; `outguard.py`).

From the CLI: `--overwrite` with `-o` equal to an input (or a directory holding one) is one `error:` line and
the input is untouched, for every kind of output (record shards, a model directory, an exported file); two real
`self-label` processes on one `-o`: the second stops with one line naming the first, and after the first is
SIGKILLed its stale lock is taken over and every record is written exactly once."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from gramr2_cli.cli import app
from gramr2_cli.core import outguard, records
from gramr2_cli.core.errors import GramrError
from gramr2_cli.engines import encode

from .fake_endpoint import BadEndpoint
from .helpers import ENV, digest
from .helpers import one_error_line as one_error_line_of
from .helpers import records as read_back


def one_error_line(args: list[str], *needles: str) -> str:
    return one_error_line_of(CliRunner().invoke(app, [str(a) for a in args]), *needles)


def tree(path) -> dict:
    """{relative path: bytes} of every file under `path` (or of the file itself)."""
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def shard(tmp_path):
    """A finished shard directory of 6 labelled pairs (what filter/merge/self-label read)."""
    recs = [records.new_pair(f"q{i}", f"a{i}", f"b{i}", label="A") for i in range(6)]
    src = tmp_path / "src.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in recs))
    r = CliRunner().invoke(app, ["data", "merge", str(src), "-o", str(tmp_path / "x")])
    assert r.exit_code == 0, r.output
    return tmp_path / "x"


# ---------------------------------------------------------------- item 2: no command deletes one of its inputs

@pytest.mark.parametrize("command", [["data", "merge"], ["filter"], ["self-label"], ["data", "import"],
                                     ["prove"], ["rank", "pairs"]])
def test_overwrite_never_deletes_an_input_directory(tiny_model, shard, command):
    before = tree(shard)
    extra = {"data": [], "filter": [], "prove": ["--prover", str(tiny_model)]}.get(command[0],
                                                                                 ["--model", str(tiny_model)])
    one_error_line([*command, shard, "-o", shard, "--overwrite", *extra], "the output is an input")
    assert tree(shard) == before


def test_overwrite_never_deletes_a_directory_holding_an_input(tmp_path, shard):
    before = tree(tmp_path / "src.jsonl")
    one_error_line(["filter", tmp_path / "src.jsonl", "-o", tmp_path, "--overwrite"], "the output holds an input")
    assert tree(tmp_path / "src.jsonl") == before and tree(shard)


def test_export_never_replaces_its_input_file(tmp_path, shard):
    src = tmp_path / "src.jsonl"
    before = src.read_bytes()
    one_error_line(["data", "export", src, "-o", src, "--overwrite"], "the output is an input")
    assert src.read_bytes() == before


def test_training_never_deletes_its_data_or_starting_weights(tiny_model, tmp_path, shard):
    model = tmp_path / "rm"
    shutil.copytree(tiny_model, model)
    before = tree(model)
    one_error_line(["pretrain", shard, "-o", model, "--model", model, "--overwrite", "--max-steps", "1"],
                   "the output is an input", str(model))
    assert tree(model) == before
    one_error_line(["pretrain", tmp_path / "src.jsonl", "-o", tmp_path, "--model", tiny_model, "--overwrite"],
                   "the output holds an input")
    assert tree(model) == before and tree(shard)


# ---------------------------------------------------------------- item 10: split names stay inside -o

@pytest.mark.parametrize("names", ["train,..", "..,test", ".,test"])
def test_split_names_cannot_leave_the_output(tmp_path, shard, names):
    out = tmp_path / "deep" / "splits"
    before = sorted(p.name for p in tmp_path.iterdir())
    one_error_line(["data", "split", shard, "-o", out, "--names", names, "--ratio", "1,1"], "--names")
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not (tmp_path / "deep").exists()


# ---------------------------------------------------------------- item 8: one writer per output

def test_the_lock_names_its_holder_and_is_released(tmp_path):
    with outguard.lock(tmp_path / "out") as held:
        info = json.loads(held.path.read_text())
        assert info["pid"] > 0 and held.path.name == ".gramr2.lock"
        with pytest.raises(GramrError, match=f"another gramr2 is writing this output \\(pid {info['pid']} on "):
            outguard.lock(tmp_path / "out")                    # a second open file: refused, in-process too
    assert not held.path.exists()
    outguard.lock(tmp_path / "out").release()                  # free again


def test_two_processes_on_one_output_and_a_stale_lock(tiny_model, tmp_path, tok):
    ids = encode(tok, "<answer>\nA\n</answer>") + [tok.convert_tokens_to_ids("<|im_end|>")]
    ep = BadEndpoint(ids, encode(tok, "A")[0], encode(tok, "B")[0], "slow", max_wait=120)
    try:
        recs = [records.new_pair(f"What is {i} + {i}?", f"It is {2 * i}.", "No idea.") for i in range(4)]
        inp = tmp_path / "pairs.jsonl"
        inp.write_text("".join(json.dumps(r) + "\n" for r in recs))
        out = tmp_path / "labeled"
        args = ["self-label", str(inp), "-o", str(out), "--model", str(tiny_model), "--engine", "openai", "-s",
                f"generate.endpoints=[{ep.url}]", "-s", "generate.max_new_tokens=16", "--no-progress"]
        first = subprocess.Popen([sys.executable, "-m", "gramr2_cli.cli", *args], env=ENV,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 180
            while ep.requests < 1:                       # the first writer holds the lock and waits on replies
                assert first.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            second = subprocess.run([sys.executable, "-m", "gramr2_cli.cli", *args], env=ENV, text=True,
                                    capture_output=True, timeout=180)
            assert second.returncode == 1 and "Traceback" not in second.stderr, second.stderr
            errors = [ln for ln in second.stderr.splitlines() if ln.startswith("error:")]
            assert len(errors) == 1 and f"another gramr2 is writing this output (pid {first.pid} " in errors[0]
            assert first.poll() is None                  # the second writer did not disturb the first
        finally:
            first.send_signal(signal.SIGKILL)            # dies holding the lock: its file stays behind, stale
            first.wait()
        assert (out / ".gramr2.lock").exists() and str(first.pid) in (out / ".gramr2.lock").read_text()
        ep.mode = "ok"
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0, r.output
        got = read_back(out)
        assert sorted(g["id"] for g in got) == sorted(r["id"] for r in recs)      # each exactly once
        assert json.loads((out / "manifest.json").read_text())["counts"]["out"] == 4
        assert not (out / ".gramr2.lock").exists() and digest(out)
    finally:
        ep.close()


@pytest.fixture(scope="module")
def tok(tiny_model):
    from gramr2_cli.core import models
    return models.load_tokenizer(str(tiny_model))
