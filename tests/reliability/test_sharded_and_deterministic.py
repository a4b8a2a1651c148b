"""Issue 8 items 2 and 4: sharded runs equal an unsharded run; same seed → byte-identical outputs. The import
runs are real processes (three shards, three processes); the tiny-model runs are in this process where a fresh
interpreter would only add its ~10 s of imports, and in a second process where that is the point."""

import json

import pytest

from .helpers import digest, gramr2, gramr2_here, records


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    """A prompt/chosen/rejected file for import, 300 records."""
    p = tmp_path_factory.mktemp("src") / "pcr.jsonl"
    p.write_text("".join(json.dumps({"prompt": f"What is {i} + {i}?", "chosen": f"{2 * i}",
                                     "rejected": f"{2 * i + 1}"}) + "\n" for i in range(300)))
    return p


def test_import_sharded_three_processes_then_merge_equals_unsharded(tmp_path, pairs_file):
    gramr2("data", "import", pairs_file, "--format", "pairs", "--order", "random", "--seed", "4", "-o", tmp_path / "one")
    for i in range(3):
        gramr2("data", "import", pairs_file, "--format", "pairs", "--order", "random", "--seed", "4",
               "-o", tmp_path / "sharded", "--shard-index", i, "--num-shards", 3)
    gramr2("data", "merge", tmp_path / "sharded", "-o", tmp_path / "merged")
    one = {r["id"]: r for r in records(tmp_path / "one")}
    merged = {r["id"]: r for r in records(tmp_path / "merged")}
    assert len(one) == 300 and one == merged
    assert len(records(tmp_path / "sharded")) == 300   # the three parts hold no duplicates either


def test_rank_pairs_sharded_equals_unsharded(tmp_path, tiny_model, tiny_pairs):
    common = ["--model", tiny_model, "--engine", "hf", "-s", "generate.max_new_tokens=8", "--seed", "1"]
    gramr2_here("rank", "pairs", tiny_pairs, "-o", tmp_path / "one", *common)
    for i in range(3):
        gramr2_here("rank", "pairs", tiny_pairs, "-o", tmp_path / "sh", "--shard-index", i, "--num-shards", 3,
                    *common)
    gramr2_here("data", "merge", tmp_path / "sh", "-o", tmp_path / "merged")
    one = sorted(r["id"] for r in records(tmp_path / "one"))
    assert one == sorted(r["id"] for r in records(tmp_path / "merged"))
    assert len(one) == 24


def test_synth_and_import_random_are_byte_identical(tmp_path, pairs_file):
    for run, cli in (("a", gramr2), ("b", gramr2_here)):       # a fresh process, then this one
        cli("data", "synth", "--n", 60, "--seed", 7, "-o", tmp_path / f"synth-{run}")
        cli("data", "import", pairs_file, "--format", "pairs", "--order", "random", "--seed", 3,
            "-o", tmp_path / f"imp-{run}")
    assert digest(tmp_path / "synth-a") == digest(tmp_path / "synth-b")
    assert digest(tmp_path / "imp-a") == digest(tmp_path / "imp-b")
    gramr2_here("data", "synth", "--n", 60, "--seed", 8, "-o", tmp_path / "synth-c")
    assert digest(tmp_path / "synth-a") != digest(tmp_path / "synth-c")


def test_rank_sampled_votes_are_byte_identical_on_hf(tmp_path, tiny_model, tiny_pairs):
    args = ["--model", tiny_model, "--engine", "hf", "--votes", 3, "-s", "generate.temperature=1.0",
            "-s", "generate.max_new_tokens=8", "--seed", 5]
    gramr2("rank", "pairs", tiny_pairs, "-o", tmp_path / "a", *args)          # a fresh process
    gramr2_here("rank", "pairs", tiny_pairs, "-o", tmp_path / "b", *args)     # this one (its engine cached)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
