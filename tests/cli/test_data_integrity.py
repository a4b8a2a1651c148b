"""Issue 17 items 1-4 and 6, reproduced from the CLI: sharded --overwrite, resume checks, split by prompt,
merge of unfinished inputs, failed imports."""

import json
from pathlib import Path

from cli_helpers import ok, one_error

from gramr2_cli.core import readers, shards

FIX = Path(__file__).parent.parent / "fixtures"


def pairs_file(path: Path, n: int, tag: str = "p") -> Path:
    rows = [{"prompt": f"{tag} question {i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def ids(path: Path) -> list[str]:
    return sorted(r["id"] for r in readers.read_all([path]))


# ---------------------------------------------------------------- item 1: sharded --overwrite

def test_sharded_overwrite_keeps_the_other_shards_output(tmp_path):
    src, out = pairs_file(tmp_path / "in.jsonl", 40), tmp_path / "out"
    ok(["data", "import", str(src), "-o", str(out), "--shard-index", "0", "--num-shards", "2"])
    ok(["data", "import", str(src), "-o", str(out), "--shard-index", "1", "--num-shards", "2", "--overwrite"])
    assert len(ids(out)) == 40 and shards.is_done(out)
    # overwriting shard 0 again leaves shard 1's part, manifest and summary untouched
    before = {p.name: p.read_bytes() for p in out.glob("*-00001-of-00002.*")}
    assert sorted(before) == ["manifest-00001-of-00002.json", "part-00001-of-00002.jsonl",
                              "summary-00001-of-00002.json"]
    ok(["data", "import", str(src), "-o", str(out), "--shard-index", "0", "--num-shards", "2", "--overwrite"])
    assert {p.name: p.read_bytes() for p in out.glob("*-00001-of-00002.*")} == before
    assert len(ids(out)) == 40 and shards.is_done(out)


# ---------------------------------------------------------------- item 2: resume checks what it resumes

def test_resume_into_output_of_other_inputs_is_refused(tmp_path):
    a, b, out = pairs_file(tmp_path / "a.jsonl", 6, "a"), pairs_file(tmp_path / "b.jsonl", 6, "b"), tmp_path / "o"
    ok(["data", "import", str(a), "-o", str(out)])
    r = one_error(["data", "import", str(b), "-o", str(out)], "other inputs")
    assert "--overwrite" in r.output
    assert sorted(r["prompt"] for r in readers.read_all([out])) == [f"a question {i}" for i in range(6)]


def test_resume_after_the_input_changed_is_refused(tmp_path):
    a, out = pairs_file(tmp_path / "a.jsonl", 6), tmp_path / "o"
    ok(["data", "import", str(a), "-o", str(out)])
    pairs_file(a, 9)
    one_error(["data", "import", str(a), "-o", str(out)], "other inputs")


def test_resume_with_other_num_shards_is_refused(tmp_path):
    a, out = pairs_file(tmp_path / "a.jsonl", 10), tmp_path / "o"
    ok(["data", "import", str(a), "-o", str(out), "--shard-index", "0", "--num-shards", "2"])
    one_error(["data", "import", str(a), "-o", str(out), "--shard-index", "0", "--num-shards", "3"],
              "--num-shards 2")
    one_error(["data", "import", str(a), "-o", str(out)], "--num-shards 2")


def test_resume_with_the_same_inputs_still_resumes(tmp_path):
    a, out = pairs_file(tmp_path / "a.jsonl", 6), tmp_path / "o"
    ok(["data", "import", str(a), "-o", str(out)])
    ok(["data", "import", str(a), "-o", str(out)])
    assert json.loads((out / "summary.json").read_text())["counts"]["resumed"] == 6
    assert len(ids(out)) == 6


# ---------------------------------------------------------------- item 3: split by source prompt

def test_split_keeps_each_rmbench_prompt_in_one_part(tmp_path):
    ok(["data", "import", str(FIX / "rmbench.json"), "-o", str(tmp_path / "rm")])
    ok(["data", "split", str(tmp_path / "rm"), "-o", str(tmp_path / "s"), "--ratio", "0.5,0.5"])
    train, test = (readers.read_all([tmp_path / "s" / n]) for n in ("train", "test"))
    assert len(train) == 18 and len(test) == 18
    assert {r["prompt"] for r in train}.isdisjoint({r["prompt"] for r in test})
    assert len({r["prompt"] for r in train}) == 2 and len({r["prompt"] for r in test}) == 2


# ---------------------------------------------------------------- item 4: merge of unfinished inputs

def test_merge_refuses_missing_shards_unless_allow_partial(tmp_path):
    src, imp = pairs_file(tmp_path / "in.jsonl", 20), tmp_path / "imp"
    for i in range(3):
        ok(["data", "import", str(src), "-o", str(imp), "--shard-index", str(i), "--num-shards", "4"])
    one_error(["data", "merge", str(imp), "-o", str(tmp_path / "m")], "3 of 4 shards", "--allow-partial")
    assert not (tmp_path / "m").exists()
    r = ok(["data", "merge", str(imp), "-o", str(tmp_path / "m"), "--allow-partial"])
    assert "warning:" in r.output and "3 of 4 shards" in r.output
    assert ids(tmp_path / "m") == ids(imp) and len(ids(imp)) < 20


def test_merge_refuses_an_unfinished_input(tmp_path):
    src, imp = pairs_file(tmp_path / "in.jsonl", 5), tmp_path / "imp"
    ok(["data", "import", str(src), "-o", str(imp)])
    man = json.loads((imp / "manifest.json").read_text())
    (imp / "manifest.json").write_text(json.dumps(man | {"done": False}))
    one_error(["data", "merge", str(imp), "-o", str(tmp_path / "m")], "not finished", "--allow-partial")


# ---------------------------------------------------------------- item 6: failed imports

def test_failed_import_leaves_no_output_directory(tmp_path):
    src = pairs_file(tmp_path / "in.jsonl", 300)
    with open(src, "a") as f:
        f.write(json.dumps({"prompt": "p", "chosen": "c"}) + "\n")
    one_error(["data", "import", str(src), "-o", str(tmp_path / "o"), "--batch-size", "10"], "'rejected'")
    assert not (tmp_path / "o").exists()


def test_csv_input_says_csv_is_not_supported(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("prompt,chosen,rejected\nq,a,b\n")
    one_error(["data", "import", str(src), "-o", str(tmp_path / "o")], "CSV is not supported", "convert with",
              "pandas")


def test_null_column_says_null(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": None}) + "\n")
    r = one_error(["data", "import", str(src), "-o", str(tmp_path / "o")], "'rejected' is null")
    assert "missing" not in r.output
