"""Issue 27 items 11 and 12: bad input that used to be a traceback (or GBs of memory) is one `error:` line and
exit 1 — a lone surrogate, deeply nested JSON, `inf`/`nan` settings, a full disk, a corrupt line or manifest
in an existing output, a YAML alias bomb. docs/errors.md lists them."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time

import pytest

from .helpers import ENV
from .test_bad_inputs import GOOD, assert_one_error, invoke, jsonl

LONE = '{"prompt": "x \\ud800 y", "response_a": "4", "response_b": "5", "label": "A"}'


def good_rows(n: int) -> list[dict]:
    return [{**GOOD, "prompt": f"What is {i} + 2?"} for i in range(n)]


# ---------------------------------------------------------------- records

def test_a_lone_surrogate_is_one_line(tmp_path):
    f = jsonl(tmp_path / "in.jsonl", *good_rows(2), LONE.encode())
    line = assert_one_error(*invoke("filter", f, "-o", tmp_path / "out"), r"in.jsonl line 3: a lone surrogate")
    assert "\\ud800" in line


def test_import_of_a_lone_surrogate_leaves_no_half_written_output(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(3)]
    f = jsonl(tmp_path / "in.jsonl", *rows, b'{"prompt": "q\\udc00", "chosen": "a", "rejected": "b"}')
    assert_one_error(*invoke("data", "import", f, "--format", "pairs", "-o", tmp_path / "out"), r"lone surrogate")
    assert not (tmp_path / "out").exists()


def test_deeply_nested_json_is_one_line(tmp_path):
    deep = b'{"prompt": "p", "response_a": "a", "response_b": "b", "meta": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    f = jsonl(tmp_path / "in.jsonl", *good_rows(1), deep)
    assert_one_error(*invoke("filter", f, "-o", tmp_path / "out"), r"in.jsonl line 2: JSON nested too deeply")
    arr = tmp_path / "in.json"
    arr.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    assert_one_error(*invoke("filter", arr, "-o", tmp_path / "out2"), r"in.json: JSON nested too deeply")


# ---------------------------------------------------------------- settings

@pytest.mark.parametrize("setting,pattern", [
    ("seed=inf", r"config key 'seed': expected a finite int, got 'inf'"),
    ("seed=-inf", r"config key 'seed': expected a finite int, got '-inf'"),
    ("generate.request_timeout=nan", r"'generate.request_timeout': expected a finite float, got 'nan'"),
    ("filter.min_agreement=inf", r"'filter.min_agreement': expected a finite float, got 'inf'"),
])
def test_inf_and_nan_settings_are_one_line(tmp_path, setting, pattern):
    f = jsonl(tmp_path / "in.jsonl", *good_rows(2))
    assert_one_error(*invoke("filter", f, "-o", tmp_path / "out", "-s", setting), pattern)


def test_a_yaml_alias_bomb_is_one_line_in_bounded_memory(tmp_path):
    """9 levels of 9 aliases: 387 million strings once expanded, in 600 bytes. A real process, whose own peak
    memory (VmHWM of its address space, which starts anew at exec) it writes at exit: the rusage of a child
    forked from a big pytest worker (torch, vLLM) counts the worker's pages from before the exec."""
    levels = ['    - &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"    - &l{k} [{', '.join([f'*l{k - 1}'] * 9)}]" for k in range(1, 9)]
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text("filter:\n  min_agreement:\n" + "\n".join(levels) + "\n")
    assert len(recipe.read_bytes()) < 700
    hwm = tmp_path / "hwm"
    child = ("import atexit, sys\n"
             "def hwm():\n"
             "    line = next(x for x in open('/proc/self/status') if x.startswith('VmHWM'))\n"
             f"    open({str(hwm)!r}, 'w').write(line.split()[1])\n"
             "atexit.register(hwm)\n"
             f"sys.argv = ['gramr2', 'config', 'check', {str(recipe)!r}]\n"
             "from gramr2_cli.cli import main\n"
             "main()\n")
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", child], env=ENV, capture_output=True, text=True, timeout=120)
    err = p.stderr
    assert p.returncode == 1, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "more than 100000 values once its YAML aliases" in errors[0], err
    assert "Traceback" not in err and len(err) < 1000
    assert int(hwm.read_text()) < 1_000_000            # KiB (~60 MB measured; GBs before)
    assert time.monotonic() - t0 < 120


# ---------------------------------------------------------------- a full disk

def test_a_full_disk_is_one_line_naming_the_part_file(tmp_path, monkeypatch):
    f = jsonl(tmp_path / "in.jsonl", *good_rows(3))

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    line = assert_one_error(*invoke("filter", f, "-o", tmp_path / "out"), r"no space left on device")
    assert "part-00000-of-00001.jsonl" in line


def test_a_full_stdout_is_one_line(tmp_path):
    """A real ENOSPC: `-o -` into /dev/full."""
    f = jsonl(tmp_path / "in.jsonl", *good_rows(3))
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "gramr2_cli.cli", "data", "merge", str(f), "-o", "-"], env=ENV,
                           stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert_one_error(p.returncode, p.stderr, r"no space left on device")


# ---------------------------------------------------------------- what an existing output holds

@pytest.mark.parametrize("bad,where", [(b'"just text"\n', "line 4"), (b"[1, 2]\n", "line 4"),
                                       (b"\xff\xfe not utf-8\n", "line 4"), (b'{"no_id": 1}\n', "line 4")])
def test_a_corrupt_line_in_an_existing_part_is_one_line(tmp_path, bad, where):
    f = jsonl(tmp_path / "in.jsonl", *good_rows(3))
    out = tmp_path / "out"
    assert invoke("data", "merge", f, "-o", out)[0] == 0
    man = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**man, "done": False}))     # an unfinished run to resume
    with open(out / "part-00000-of-00001.jsonl", "ab") as part:
        part.write(bad)
    assert_one_error(*invoke("data", "merge", f, "-o", out), f"part-00000-of-00001.jsonl {where}: corrupt line")


@pytest.mark.parametrize("field,value", [("num_shards", "x"), ("inputs", 5), ("inputs", [1]), ("done", "yes"),
                                         ("shard_index", -1), ("config_hash", ["a"])])
def test_a_manifest_field_of_the_wrong_type_is_one_line(tmp_path, field, value):
    f = jsonl(tmp_path / "in.jsonl", *good_rows(3))
    out = tmp_path / "out"
    assert invoke("data", "merge", f, "-o", out)[0] == 0
    man = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**man, field: value}))
    assert_one_error(*invoke("data", "merge", f, "-o", out), rf"manifest.json: corrupt manifest \('{field}' must be")
