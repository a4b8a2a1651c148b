"""`gramr2 data import|export|stats|merge|split` through the CLI: outputs, one-line errors, kill and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import ok, one_error, runner

from gramr2_cli.cli import app
from gramr2_cli.core import readers, records

FIX = Path(__file__).parent.parent / "fixtures"


@pytest.mark.parametrize("cmd", ["import", "export", "stats", "merge", "split"])
def test_help_has_an_example(cmd):
    r = ok(["data", cmd, "--help"])
    assert "Example: gramr2 data " + cmd in r.output


def test_import_each_fixture_with_counts(tmp_path):
    expect = {"pairs.json": 4, "rewardbench.jsonl": 4, "helpsteer3.jsonl": 4, "rmbench.json": 36,
              "judgebench.jsonl": 6}
    for name, n in expect.items():
        out = tmp_path / name.split(".")[0]
        r = ok(["data", "import", str(FIX / name), "-o", str(out), "--order", "both"])
        assert "import summary" in r.output
        assert len(readers.read_all([out])) == 2 * n
        summary = json.loads((out / "summary.json").read_text())
        assert summary["counts"]["out"] == 2 * n
        assert summary["skipped"] == ({"tie": 1} if name == "helpsteer3.jsonl" else {})
        assert json.loads((out / "manifest.json").read_text())["done"] is True


def test_import_to_stdout_and_stats_json(tmp_path):
    r = ok(["data", "import", str(FIX / "judgebench.jsonl"), "-o", "-", "--order", "fixed"])
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert [x["label"] for x in lines] == ["A", "B", "B", "A", "A", "B"]
    p = tmp_path / "jb.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    s = json.loads(ok(["data", "stats", str(p), "--json"]).stdout)
    assert (s["count"], s["label_A"], s["label_B"]) == (6, 3, 3)
    assert s["categories"] == {"knowledge": 3, "coding": 2, "math": 1}
    table = ok(["data", "stats", str(p)]).output
    assert "share_A" in table and "knowledge" in table


def test_rerun_with_other_options_is_an_error(tmp_path):
    out = tmp_path / "o"
    ok(["data", "import", str(FIX / "pairs.json"), "-o", str(out)])
    one_error(["data", "import", str(FIX / "pairs.json"), "-o", str(out), "--order", "both"],
              str(out), "different config")
    ok(["data", "import", str(FIX / "pairs.json"), "-o", str(out), "--order", "both", "--overwrite"])
    assert len(readers.read_all([out])) == 8


def test_export_merge_split_through_cli(tmp_path):
    ok(["data", "import", str(FIX / "helpsteer3.jsonl"), "-o", str(tmp_path / "hs"), "--order", "both"])
    ok(["data", "export", str(tmp_path / "hs"), "--format", "alpaca", "-o", str(tmp_path / "sft.jsonl")])
    rows = [json.loads(x) for x in (tmp_path / "sft.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["output"].startswith("<think>\nFeedback: Response ") for r in rows)
    ok(["data", "merge", str(tmp_path / "hs"), str(tmp_path / "hs"), "-o", str(tmp_path / "m")])
    assert json.loads((tmp_path / "m" / "summary.json").read_text())["skipped"] == {"duplicate_id": 8}
    ok(["data", "split", str(tmp_path / "m"), "-o", str(tmp_path / "s"), "--count", "2", "--names", "dev,train",
        "--seed", "1"])
    dev, train = readers.read_all([tmp_path / "s" / "dev"]), readers.read_all([tmp_path / "s" / "train"])
    assert (len(dev), len(train)) == (2, 6)
    assert len({r["meta"]["pair_group"] for r in dev}) == 1     # both orders of one pair
    one_error(["data", "split", str(tmp_path / "m"), "-o", str(tmp_path / "s2"), "--ratio", "0.5,x"], "--ratio")


# ---------------------------------------------------------------- malformed inputs: exit 1, one line, the file

def test_missing_column(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"prompt": "p", "chosen": "c"}) + "\n")
    one_error(["data", "import", str(p), "--format", "pairs", "-o", str(tmp_path / "o")],
              f"{p} line 1", "missing column 'rejected'")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_text("")
    one_error(["data", "import", str(p), "-o", str(tmp_path / "o")], f"{p}: empty file")


def test_non_utf8_bytes(tmp_path):
    p = tmp_path / "latin1.jsonl"
    p.write_bytes(json.dumps({"prompt": "caf", "chosen": "c", "rejected": "r"}).encode()[:-2] + b'\xe9"}\n')
    one_error(["data", "import", str(p), "-o", str(tmp_path / "o")], f"{p} line 1", "not valid UTF-8")


def test_truncated_last_line(tmp_path):
    p = tmp_path / "cut.jsonl"
    good = json.dumps({"prompt": "p", "chosen": "c", "rejected": "r"})
    p.write_text(good + "\n" + good[:20])
    one_error(["data", "import", str(p), "-o", str(tmp_path / "o")], f"{p} line 2", "truncated")


def test_label_c_in_pair_records(tmp_path):
    p = tmp_path / "recs.jsonl"
    rec = dict(records.new_pair("p", "a", "b", "A"), label="C")
    p.write_text(json.dumps(rec) + "\n")
    for cmd in (["data", "stats", str(p)], ["data", "export", str(p), "-o", str(tmp_path / "e.jsonl")],
                ["data", "merge", str(p), "-o", str(tmp_path / "m")]):
        one_error(cmd, f"{p} line 1", "'label' must be \"A\", \"B\" or null, got 'C'")


def test_undetectable_format(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    one_error(["data", "import", str(p), "-o", str(tmp_path / "o")], f"{p} line 1", "cannot detect the format")


# ---------------------------------------------------------------- kill -9 and resume

def _big_input(path: Path, n: int) -> None:
    with open(path, "w") as f:
        f.writelines(json.dumps({"prompt": f"question {i}: what is {i} + {i}?", "chosen": f"{2 * i}",
                                 "rejected": f"{2 * i + 1}", "category": "math"}) + "\n" for i in range(n))


def _cmd(src: Path, out: Path, batch: int = 20) -> list[str]:
    # a small flush batch makes the killed run slow enough to catch in the middle
    return [sys.executable, "-m", "gramr2_cli.cli", "data", "import", str(src), "-o", str(out),
            "--order", "random", "--seed", "7", "--batch-size", str(batch)]


@pytest.mark.slow   # the fast tier runs the same kill/rerun check: tests/reliability/test_interrupt.py[data-import-SIGKILL]
def test_kill_and_resume_matches_an_uninterrupted_run(tmp_path):
    src = tmp_path / "big.jsonl"
    n = 20000
    _big_input(src, n)
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRAMR2_THREADS="1")
    out = tmp_path / "killed"
    part = out / "part-00000-of-00001.jsonl"
    proc = subprocess.Popen(_cmd(src, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        if part.exists() and part.stat().st_size > 2000:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    written = part.read_bytes().count(b"\n")
    assert 0 < written < n, written                      # really killed in the middle
    assert json.loads((out / "manifest.json").read_text())["done"] is False

    subprocess.run(_cmd(src, out), env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    full = tmp_path / "full"
    subprocess.run(_cmd(src, full, batch=20000), env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    resumed = [json.loads(x) for x in part.read_text().splitlines()]
    uninterrupted = [json.loads(x) for x in (full / "part-00000-of-00001.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in resumed]
    assert len(ids) == len(set(ids)) == n                # no duplicates, nothing lost
    assert ids == [r["id"] for r in uninterrupted]       # same records, same order
    assert resumed == uninterrupted                      # byte-for-byte the same records (flush size is not config)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["resumed"] == written and summary["counts"]["out"] == n - written


def test_stdin_to_stdout():
    rows = [{"prompt": f"p{i}", "chosen": "good", "rejected": "bad"} for i in range(3)]
    r = runner.invoke(app, ["data", "import", "-", "-o", "-", "--order", "both"],
                      input="".join(json.dumps(x) + "\n" for x in rows))
    assert r.exit_code == 0, r.output
    got = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert [(g["prompt"], g["label"], g["meta"]["order"]) for g in got] == [
        (f"p{i}", lab, o) for i in range(3) for lab, o in (("A", "ab"), ("B", "ba"))]


def test_cli_qa_dump_autodetected_and_unlabeled_flag(tmp_path):
    """A Q&A dump is recognised by its columns and imported unlabeled; --unlabeled does the same for any pairs."""
    ok(["data", "import", str(FIX / "stackexchange.jsonl"), "-o", str(tmp_path / "qa")])
    qa = readers.read_all([tmp_path / "qa"])
    assert len(qa) == 4 and {r["label"] for r in qa} == {None} and {r["source"] for r in qa} == {"qa"}
    ok(["data", "import", str(FIX / "judgebench.jsonl"), "-o", str(tmp_path / "jb"), "--unlabeled",
        "--order", "fixed"])
    ok(["data", "import", str(FIX / "judgebench.jsonl"), "-o", str(tmp_path / "jbl"), "--order", "fixed"])
    jb, labeled = readers.read_all([tmp_path / "jb"]), readers.read_all([tmp_path / "jbl"])
    assert {r["label"] for r in jb} == {None} and len(jb) == 6
    assert [r["meta"]["gold_label"] for r in jb] == [r["label"] for r in labeled] == ["A", "B", "B", "A", "A", "B"]
