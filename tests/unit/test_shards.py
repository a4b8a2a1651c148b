import json
from collections import Counter

import pytest

from gramr2_cli.core import readers, records, shards
from gramr2_cli.core.errors import GramrError


def _recs(n, start=0):
    return [records.new_pair(f"q{i}", f"a{i}", f"b{i}", label="AB"[i % 2]) for i in range(start, start + n)]


def _write_jsonl(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def test_read_jsonl_json_array_parquet_and_datasets_dir(tmp_path):
    import datasets
    recs = _recs(5)
    _write_jsonl(tmp_path / "a.jsonl", recs)
    (tmp_path / "b.json").write_text(json.dumps(recs))
    flat = [{k: r[k] for k in ("id", "prompt", "response_a", "response_b", "label")} for r in recs]
    datasets.Dataset.from_list(flat).to_parquet(str(tmp_path / "c.parquet"))
    datasets.Dataset.from_list(flat).save_to_disk(str(tmp_path / "d"))
    for src in ("a.jsonl", "b.json", "c.parquet", "d"):
        got = readers.read_all([tmp_path / src])
        assert [r["id"] for r in got] == [r["id"] for r in recs], src
        assert [r["label"] for r in got] == ["A", "B", "A", "B", "A"], src


def test_read_errors_name_file_and_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"prompt":"q","response_a":"a","response_b":"b"}\n{"prompt":"q","response_a":"a","response_b":"c","label":"C"}\n')
    with pytest.raises(GramrError, match=r"x.jsonl line 2: 'label' must be"):
        readers.read_all([p])
    p.write_bytes(b'{"prompt":"q","response_a":"\xff","response_b":"b"}\n')
    with pytest.raises(GramrError, match="line 1: not valid UTF-8"):
        readers.read_all([p])
    p.write_text("")
    with pytest.raises(GramrError, match="empty file"):
        readers.read_all([p])
    p.write_text('{"prompt":"q","response_a":"a","response_b":"b"}\n{"prompt":"q","resp')
    with pytest.raises(GramrError, match="line 2: truncated JSON line"):
        readers.read_all([p])
    with pytest.raises(GramrError, match="no such file"):
        readers.read_all([tmp_path / "missing.jsonl"])


def test_read_skips_duplicates_done_ids_and_bad_records_when_asked(tmp_path):
    recs = _recs(4)
    bad = {"prompt": "q", "response_a": "a", "response_b": "b", "label": "C"}
    _write_jsonl(tmp_path / "a.jsonl", recs + [recs[0], bad])
    skipped = Counter()
    got = readers.read_all([tmp_path / "a.jsonl"], skip={recs[1]["id"]}, skipped=skipped, on_bad="skip")
    assert [r["id"] for r in got] == [recs[0]["id"], recs[2]["id"], recs[3]["id"]]
    assert skipped == Counter({"duplicate_id": 1, "already_done": 1, "invalid_record": 1})


def test_sharding_partitions_ids(tmp_path):
    recs = _recs(60)
    _write_jsonl(tmp_path / "a.jsonl", recs)
    parts = [{r["id"] for r in readers.read([tmp_path / "a.jsonl"], shard_index=i, num_shards=3)} for i in range(3)]
    assert set().union(*parts) == {r["id"] for r in recs}
    assert sum(len(p) for p in parts) == 60 and all(parts)


def test_output_writes_manifest_summary_config_and_resumes(tmp_path):
    out_dir = tmp_path / "out"
    cfg = {"x": 1}
    with shards.open_output(out_dir, stage="t", config=cfg, batch_size=2) as out:
        for r in _recs(3):
            out.write(r)
    man = json.loads((out_dir / "manifest.json").read_text())
    assert man["done"] is True and man["stage"] == "t" and man["counts"] == {"out": 3}
    assert json.loads((out_dir / "summary.json").read_text())["counts"] == {"out": 3}
    assert "x: 1" in (out_dir / "config.yaml").read_text()
    part = out_dir / "part-00000-of-00001.jsonl"
    line = json.loads(part.read_text().splitlines()[0])
    assert line["meta"]["provenance"]["t"]["recipe_hash"] == shards.config_hash(cfg)
    # simulate a kill mid-line: the truncated line is dropped, complete ids are skipped on resume
    part.write_bytes(part.read_bytes() + b'{"id": "trunc')
    with shards.open_output(out_dir, stage="t", config=cfg) as out:
        assert out.done_ids == {r["id"] for r in _recs(3)}
        for r in readers.read([_write_jsonl(tmp_path / "in.jsonl", _recs(5))], skip=out.done_ids):
            out.write(r)
    ids = [json.loads(x)["id"] for x in part.read_text().splitlines()]
    assert ids == [r["id"] for r in _recs(5)]
    assert shards.is_done(out_dir)


def test_output_refuses_other_config_unless_overwrite(tmp_path):
    with shards.open_output(tmp_path / "o", stage="t", config={"x": 1}) as out:
        out.write(_recs(1)[0])
    with pytest.raises(GramrError, match="different config"):
        shards.open_output(tmp_path / "o", stage="t", config={"x": 2})
    with shards.open_output(tmp_path / "o", stage="t", config={"x": 2}, overwrite=True) as out:
        assert out.done_ids == set()
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "stuff.txt").write_text("x")
    with pytest.raises(GramrError, match="not empty and has no manifest"):
        shards.open_output(tmp_path / "p", stage="t", config={})


def test_interrupted_output_is_not_done_and_keeps_written_records(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with shards.open_output(tmp_path / "o", stage="t", config={}, batch_size=100) as out:
            out.write(_recs(1)[0])
            raise KeyboardInterrupt
    assert not shards.is_done(tmp_path / "o")
    assert len((tmp_path / "o" / "part-00000-of-00001.jsonl").read_text().splitlines()) == 1


def test_rejected_part_and_reasons(tmp_path):
    with shards.open_output(tmp_path / "o", stage="filter", config={}) as out:
        a, b = _recs(2)
        out.write(a)
        out.write(b, part="rejected", reasons=["confidence"])
    assert [r["id"] for r in readers.read_all([tmp_path / "o"])] == [a["id"]]
    rej = readers.read_all([tmp_path / "o" / "rejected"])
    assert rej[0]["meta"]["reasons"] == ["confidence"]
    assert out.summary().counts == {"out": 1, "rejected": 1, "rejected:confidence": 1}


def test_shard_index_validation(tmp_path):
    with pytest.raises(GramrError, match="--shard-index"):
        shards.open_output(tmp_path / "o", stage="t", config={}, shard_index=3, num_shards=3)


def test_shard_processes_share_a_directory(tmp_path):
    recs = _recs(30)
    src = _write_jsonl(tmp_path / "in.jsonl", recs)
    for i in range(3):
        with shards.open_output(tmp_path / "o", stage="t", config={}, shard_index=i, num_shards=3) as out:
            assert not shards.is_done(tmp_path / "o")
            for r in readers.read([src], shard_index=i, num_shards=3):
                out.write(r)
    assert shards.is_done(tmp_path / "o")
    assert sorted(p.name for p in (tmp_path / "o").glob("manifest*")) == [
        f"manifest-{i:05d}-of-00003.json" for i in range(3)]
    assert sorted(r["id"] for r in readers.read_all([tmp_path / "o"])) == sorted(r["id"] for r in recs)


def test_sharded_overwrite_never_joins_another_config(tmp_path):
    src = _write_jsonl(tmp_path / "in.jsonl", _recs(10))
    with shards.open_output(tmp_path / "o", stage="t", config={"a": 1}, inputs=[src], shard_index=0,
                            num_shards=2) as out:
        out.write(_recs(1)[0])
    with pytest.raises(GramrError) as e:
        shards.open_output(tmp_path / "o", stage="t", config={"a": 2}, inputs=[src], shard_index=1, num_shards=2,
                           overwrite=True)
    assert "different config" in e.value.message and "delete the directory" in e.value.hint
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "config.yaml", "manifest-00000-of-00002.json", "part-00000-of-00002.jsonl", "summary-00000-of-00002.json"]


def test_atomic_open_leaves_no_file_on_error(tmp_path):
    from gramr2_cli.core import outdir
    with pytest.raises(KeyboardInterrupt), outdir.atomic_open(tmp_path / "x.json") as f:
        f.write("half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    outdir.write_json(tmp_path / "x.json", {"a": 1})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 1} and len(list(tmp_path.iterdir())) == 1


def test_connection_settings_are_not_hashed_and_an_old_full_hash_still_resumes(tmp_path):
    """Issue 27 item 9: endpoints / retries / request_timeout / max_concurrency say how to reach a server, not
    what it computes; every other key is hashed. A manifest holding the earlier all-keys hash still resumes."""
    a = {"generate": {"temperature": 0.7, "endpoints": ["http://a/v1"], "retries": 3, "request_timeout": 600.0,
                      "max_concurrency": 8}, "seed": 0}
    b = {"generate": {**a["generate"], "endpoints": ["http://b/v1"], "retries": 9, "request_timeout": 5.0,
                      "max_concurrency": 1}, "seed": 0}
    assert shards.config_hash(a) == shards.config_hash(b)
    assert shards.config_hash(a) != shards.config_hash({**a, "generate": {**a["generate"], "temperature": 0.8}})
    with pytest.raises(KeyboardInterrupt), shards.open_output(tmp_path / "o", stage="s", config=a) as out:
        out.write({"id": "x1", "prompt": "p", "response_a": "a", "response_b": "b"})
        raise KeyboardInterrupt
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    man["config_hash"] = shards.legacy_config_hash(a)          # as an earlier gramr2 wrote it
    (tmp_path / "o" / "manifest.json").write_text(json.dumps(man))
    with shards.open_output(tmp_path / "o", stage="s", config=a) as out:
        assert out.done_ids == {"x1"}
