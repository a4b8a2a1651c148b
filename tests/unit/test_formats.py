"""Importers/exporters (formats/) and stats/merge/split (datatools.py) on real and schema-shaped fixtures."""

import json
from collections import Counter
from pathlib import Path

import pytest

from gramr2_cli.core import datatools, formats, prompts, readers, records, shards
from gramr2_cli.core.errors import GramrError
from gramr2_cli.stages import data_import

FIX = Path(__file__).parent.parent / "fixtures"


def load(name, fmt="auto", order="fixed", seed=0):
    skipped = Counter()
    recs = [r for _, r in formats.convert([FIX / name], formats.ImportConfig(format=fmt, order=order, seed=seed),
                                          skipped)]
    return recs, dict(skipped)


def raw(name):
    return [obj for _, obj in readers.read_raw(FIX / name)]


# ---------------------------------------------------------------- importers on their fixtures

@pytest.mark.parametrize("name,fmt", [("pairs.json", "pairs"), ("rewardbench.jsonl", "rewardbench"),
                                      ("helpsteer3.jsonl", "helpsteer3"), ("rmbench.json", "rmbench"),
                                      ("judgebench.jsonl", "judgebench")])
def test_auto_detects_each_fixture(name, fmt):
    row = raw(name)[0]
    assert formats.detect(row, name) == fmt
    auto, _ = load(name)
    explicit, _ = load(name, fmt)
    assert [r["id"] for r in auto] == [r["id"] for r in explicit]
    assert {r["source"] for r in auto} == {fmt}


def test_undetectable_columns_list_the_formats():
    with pytest.raises(GramrError) as e:
        formats.detect({"question": "q", "answer": "a"}, "x.jsonl line 1")
    assert "x.jsonl line 1: cannot detect the format from columns ['answer', 'question']" in e.value.message
    assert all(f in e.value.hint for f in ("pairs", "helpsteer3", "rmbench", "judgebench", "rewardbench"))


def test_pairs_strings_messages_and_conversations():
    recs, skipped = load("pairs.json", "pairs")
    assert skipped == {} and len(recs) == 4
    assert [r["label"] for r in recs] == ["A"] * 4
    assert [r["meta"].get("category") for r in recs] == ["knowledge", "math", "spelling", None]
    r0, r1, r2, r3 = recs
    assert (r0["prompt"], r0["response_a"], r0["response_b"]) == (
        "Name the capital of Australia.", "Canberra is the capital of Australia.",
        "Sydney is the capital of Australia.")
    # multi-turn prompt list -> rendered text, list kept; chosen/rejected message lists -> the assistant turn
    assert r1["prompt"] == "System: Answer briefly.\nUser: What is 2 + 2?\nAssistant: 4.\nUser: And times 3?"
    assert len(r1["meta"]["messages"]) == 4
    assert (r1["response_a"], r1["response_b"]) == ("(2 + 2) * 3 = 12.", "2 + 2 * 3 = 8.")
    # `messages` column with one user turn -> its bare content; unknown column kept in meta
    assert r2["prompt"] == "Spell 'necessary' backwards." and r2["meta"]["annotator"] == "a1"
    # full conversations in chosen/rejected: the last assistant turn is the response
    assert r3["response_a"].startswith("No. It is far too narrow")
    assert r3["response_b"].startswith("Yes, it is the only")
    assert r0["id"] == records.make_id(r0["prompt"], r0["response_a"], r0["response_b"])


def test_rewardbench_subset_to_category_and_section():
    recs, _ = load("rewardbench.jsonl", "rewardbench")
    assert [r["meta"]["category"] for r in recs] == ["alpacaeval-easy", "hep-python", "refusals-dangerous", "math-prm"]
    assert [r["meta"]["section"] for r in recs] == ["chat", "reasoning", "safety", "reasoning"]
    assert [r["meta"]["source_id"] for r in recs] == [30001, 30002, 30003, 30004]
    assert recs[0]["meta"]["chosen_model"] == "GPT4-Turbo" and recs[0]["response_a"] == "A spider has eight legs."
    assert all(r["label"] == "A" for r in recs)


def test_helpsteer3_ties_dropped_labels_rationales():
    recs, skipped = load("helpsteer3.jsonl", "helpsteer3")
    assert skipped == {"tie": 1}
    assert len(recs) == 4
    assert [r["label"] for r in recs] == ["A", "B", "B", "A"]        # -3, +2, +3, -2
    assert [r["meta"]["category"] for r in recs] == ["general", "code", "multilingual", "stem"]
    rows = [x for x in raw("helpsteer3.jsonl") if x["overall_preference"] != 0]
    assert [(r["response_a"], r["response_b"]) for r in recs] == [(x["response1"], x["response2"]) for x in rows]
    # Feedback (feedback1 → A, feedback2 → B), Comparison (reasoning; "@Response 1/2" -> "Response A/B"),
    # Conclusion (the overall preference), from the annotators agreeing with the overall preference
    assert recs[0]["rationale"] == (
        "Feedback: Response A: Accurate and concise. Correct.\nResponse B: Factually wrong. Incorrect.\n\n"
        "Comparison: Response A is much better than Response B because it names Rayleigh scattering correctly, "
        "while Response B repeats a myth. Response B is incorrect; Response A is correct and one sentence as "
        "asked.\n\nConclusion: Response A is better than Response B.")
    assert all(prompts.split_sections(r["rationale"]).keys() == {"Feedback", "Comparison", "Conclusion"}
               and prompts.conclusion_label(r["rationale"]) == r["label"] for r in recs)
    assert recs[0]["meta"]["individual_preference"] == rows[0]["individual_preference"]   # each annotator's text
    assert recs[1]["prompt"].startswith("User: Write a Python function that reverses a string.\nAssistant: def")
    assert recs[1]["meta"]["messages"][-1]["content"] == "Now make it ignore leading and trailing spaces."
    assert recs[0]["meta"]["overall_preference"] == -3


def test_rmbench_nine_cells_per_row_with_difficulty():
    recs, skipped = load("rmbench.json", "rmbench")
    rows = raw("rmbench.json")
    assert skipped == {} and len(recs) == 9 * len(rows) == 36
    assert len({r["id"] for r in recs}) == 36          # equal texts in different cells stay distinct
    for k, row in enumerate(rows):
        cells = recs[9 * k: 9 * k + 9]
        assert {r["meta"]["category"] for r in cells} == {row["domain"]}
        assert {r["meta"]["source_id"] for r in cells} == {row["id"]}
        assert len({r["meta"]["pair_group"] for r in cells}) == 9
        for r in cells:
            i, j = r["meta"]["style"]
            assert r["response_a"] == row["chosen"][i] and r["response_b"] == row["rejected"][j]
            assert r["meta"]["difficulty"] == ("hard" if i < j else "normal" if i == j else "easy")
            assert r["label"] == "A"
        assert Counter(r["meta"]["difficulty"] for r in cells) == {"hard": 3, "normal": 3, "easy": 3}
    cell = next(r for r in recs if r["meta"]["style"] == [0, 2])
    assert cell["meta"]["difficulty"] == "hard" and cell["meta"]["style_names"] == ["concise", "detailed_markdown"]
    assert formats.rmbench_difficulty(2, 0) == "easy"


def test_judgebench_labels_and_categories(tmp_path):
    recs, skipped = load("judgebench.jsonl", "judgebench")
    rows = raw("judgebench.jsonl")
    assert skipped == {} and len(recs) == len(rows) == 6
    assert [r["label"] for r in recs] == [{"A>B": "A", "B>A": "B"}[x["label"]] for x in rows]
    assert [r["meta"]["subset"] for r in recs] == [x["source"] for x in rows]
    assert [r["meta"]["category"] for r in recs] == ["knowledge", "knowledge", "knowledge", "math", "coding",
                                                     "coding"]
    assert recs[0]["meta"]["source_id"] == rows[0]["pair_id"]
    assert recs[0]["response_a"] == rows[0]["response_A"] and recs[0]["prompt"] == rows[0]["question"]
    # other labels are skipped and counted
    bad = tmp_path / "jb.jsonl"
    bad.write_text("".join(json.dumps(dict(x, label=lab)) + "\n" for x, lab in zip(rows, ["A=B", "A>B", "B>>A"])))
    skipped = Counter()
    got = list(formats.convert([bad], formats.ImportConfig(format="judgebench"), skipped))
    assert len(got) == 1 and skipped == {"label:A=B": 1, "label:B>>A": 1}
    # the prompt/chosen/rejected + source variant
    pcr = tmp_path / "jb2.jsonl"
    pcr.write_text(json.dumps({"prompt": "q", "chosen": "good", "rejected": "bad", "source": "livebench-math"}) + "\n")
    (_, r), = formats.convert([pcr], formats.ImportConfig(format="judgebench"), Counter())
    assert (r["response_a"], r["label"], r["meta"]["category"]) == ("good", "A", "math")


def test_missing_column_names_file_line_and_column(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps({"prompt": "p", "chosen": "c", "rejected": "r"}) + "\n"
                 + json.dumps({"prompt": "p", "chosen": "c"}) + "\n")
    with pytest.raises(GramrError) as e:
        list(formats.convert([p], formats.ImportConfig(format="pairs"), Counter()))
    assert e.value.message == f"{p} line 2: missing column 'rejected' (format pairs)"


# ---------------------------------------------------------------- order

def test_order_both_doubles_and_links_groups():
    fixed, _ = load("helpsteer3.jsonl", order="fixed")
    both, _ = load("helpsteer3.jsonl", order="both")
    assert len(both) == 2 * len(fixed)
    groups = {}
    for r in both:
        groups.setdefault(r["meta"]["pair_group"], []).append(r)
    assert set(groups) == {r["id"] for r in fixed}
    for ab, ba in groups.values():
        assert (ab["meta"]["order"], ba["meta"]["order"]) == ("ab", "ba")
        assert (ba["response_a"], ba["response_b"]) == (ab["response_b"], ab["response_a"])
        assert ba["label"] == records.swap_label(ab["label"])
        assert ba["rationale"] == formats.swap_rationale(ab["rationale"]) != ab["rationale"]


def test_order_random_is_seeded_and_per_pair():
    a, _ = load("rmbench.json", order="random", seed=1)
    b, _ = load("rmbench.json", order="random", seed=1)
    c, _ = load("rmbench.json", order="random", seed=2)
    assert [r["id"] for r in a] == [r["id"] for r in b]
    assert [r["label"] for r in a] != [r["label"] for r in c]
    assert 8 <= Counter(r["label"] for r in a)["B"] <= 28       # 36 fair coins
    fixed, _ = load("rmbench.json")
    for f, r in zip(fixed, a):                                   # a swap is a swap, nothing else
        assert r["meta"]["pair_group"] == f["id"]
        if r["label"] == "B":
            assert (r["response_a"], r["response_b"]) == (f["response_b"], f["response_a"])
        else:
            assert r["id"] == f["id"]
    # independent of what else is in the batch: one row alone gets the same coin
    single = [r for _, r in formats.convert([FIX / "rmbench.json"], formats.ImportConfig(order="random", seed=1),
                                            Counter())][:9]
    assert [r["id"] for r in single] == [r["id"] for r in a[:9]]


# ---------------------------------------------------------------- import run (resume) and exporters

def test_run_writes_shard_and_resumes(tmp_path):
    cfg = formats.ImportConfig(order="both")
    s = data_import.run(cfg, [FIX / "judgebench.jsonl"], tmp_path / "out")
    assert s.counts["out"] == 12 and shards.is_done(tmp_path / "out")
    assert s.metrics == {"labels": {"A": 6, "B": 6}, "formats": {str(FIX / "judgebench.jsonl"): "judgebench"}}
    s2 = data_import.run(cfg, [FIX / "judgebench.jsonl"], tmp_path / "out")
    assert s2.counts.get("out", 0) == 0 and s2.counts["resumed"] == 12
    assert len(readers.read_all([tmp_path / "out"])) == 12


def test_num_shards_keep_pair_groups_together(tmp_path):
    cfg = formats.ImportConfig(order="both")
    for i in range(3):
        data_import.run(cfg, [FIX / "rmbench.json"], tmp_path / "out", shard_index=i, num_shards=3)
    parts = sorted((tmp_path / "out").glob("part-*.jsonl"))
    assert len(parts) == 3
    per_part = [readers.read_all([p]) for p in parts]
    assert sum(map(len, per_part)) == 72
    owner = {}
    for k, recs in enumerate(per_part):
        for r in recs:
            assert owner.setdefault(r["meta"]["pair_group"], k) == k


def test_export_round_trip(tmp_path):
    data_import.run(formats.ImportConfig(), [FIX / "pairs.json"], tmp_path / "a")
    formats.export([tmp_path / "a"], tmp_path / "e.jsonl", "pairs")
    data_import.run(formats.ImportConfig(), [tmp_path / "e.jsonl"], tmp_path / "b")
    key = ("id", "prompt", "response_a", "response_b", "label")
    a = [tuple(r[k] for k in key) + (r["meta"].get("category"),) for r in readers.read_all([tmp_path / "a"])]
    b = [tuple(r[k] for k in key) + (r["meta"].get("category"),) for r in readers.read_all([tmp_path / "b"])]
    assert a == b and len(a) == 4


def test_export_pairs_orients_by_label_and_skips_unlabeled(tmp_path):
    src = tmp_path / "in.jsonl"
    recs = [records.new_pair("p", "x", "y", "B"), records.new_pair("q", "x", "y", None)]
    src.write_text("".join(json.dumps(r) + "\n" for r in recs))
    s = formats.export([src], tmp_path / "o.jsonl", "pairs", messages=True)
    assert s.counts == {"out": 1} and s.skipped == {"unlabeled": 1}
    (row,) = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert row["chosen"] == [{"role": "assistant", "content": "y"}]
    assert row["rejected"] == [{"role": "assistant", "content": "x"}]
    assert row["prompt"] == [{"role": "user", "content": "p"}]
    with pytest.raises(GramrError, match="exists"):
        formats.export([src], tmp_path / "o.jsonl", "pairs")


def test_export_alpaca_is_judge_prompt_and_judgment():
    rec = records.new_pair("What is 2+2?", "4", "5", "A", rationale="Feedback: a\n\nComparison: b\n\nConclusion: c")
    row = formats.export_alpaca(rec)
    msgs = prompts.judge_messages("What is 2+2?", "4", "5")
    assert row == {"instruction": msgs[0]["content"] + "\n\n" + msgs[1]["content"], "input": "",
                   "output": prompts.judgment_text(rec["rationale"], "A")}
    assert row["output"].endswith("<answer>\nA\n</answer>") and row["output"].startswith("<think>\nFeedback: a")


# ---------------------------------------------------------------- stats, merge, split

def test_stats_numbers_on_a_hand_made_set():
    recs = [
        records.new_pair("ab", "x" * 10, "y" * 20, "A", rationale="r" * 5, meta={"category": "math"}, source="s1"),
        records.new_pair("abcd", "x" * 30, "y" * 40, "B", meta={"category": "math"}, source="s1"),
        records.new_pair("abcdef", "x" * 50, "y" * 60, "A", rationale="r" * 7, source="s2"),
        records.new_pair("abcdefgh", "x" * 70, "y" * 80, None, meta={"category": "code"}, source="s2"),
    ]
    s = datatools.stats(recs)
    assert (s["count"], s["labeled"], s["unlabeled"], s["label_A"], s["label_B"]) == (4, 3, 1, 2, 1)
    assert s["share_A"] == 0.6667 and s["rationales"] == 2
    assert s["lengths"]["prompt"] == {"n": 4, "p50": 4, "p90": 8, "max": 8}
    assert s["lengths"]["response_b"] == {"n": 4, "p50": 40, "p90": 80, "max": 80}
    assert s["lengths"]["rationale"] == {"n": 2, "p50": 5, "p90": 7, "max": 7}
    assert s["categories"] == {"math": 2, "(none)": 1, "code": 1}
    assert s["sources"] == {"s1": 2, "s2": 2}


def test_merge_dedups_by_id_and_keeps_fields(tmp_path):
    a = [records.new_pair(f"p{i}", "x", "y", "A", meta={"k": i}) for i in range(5)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in a))
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in a[3:] + [records.new_pair("z", "x", "y")]))
    s = datatools.merge([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], tmp_path / "m")
    assert s.counts["out"] == 6 and s.skipped == {"duplicate_id": 2}
    got = readers.read_all([tmp_path / "m"])
    assert [r["id"] for r in got] == [r["id"] for r in a] + [records.make_id("z", "x", "y")]
    assert [r["meta"]["k"] for r in got[:5]] == list(range(5))


def test_split_sizes_determinism_and_groups(tmp_path):
    recs = [records.new_pair(f"p{i}", "x", "y", "A") for i in range(10)]
    cfg = datatools.SplitConfig(ratio=[0.8, 0.2], seed=3)
    p1 = datatools.assign(recs, cfg)
    p2 = datatools.assign(list(reversed(recs)), cfg)
    assert {k: len(v) for k, v in p1.items()} == {"train": 8, "test": 2}
    assert {k: [r["id"] for r in v] for k, v in p1.items()} == {k: [r["id"] for r in v] for k, v in p2.items()}
    assert {r["id"] for r in p1["test"]} != {r["id"] for r in datatools.assign(recs, datatools.SplitConfig(
        ratio=[0.8, 0.2], seed=4))["test"]}
    c = datatools.assign(recs, datatools.SplitConfig(count=[3], names=["dev", "rest"]))
    assert (len(c["dev"]), len(c["rest"])) == (3, 7)
    both, _ = load("helpsteer3.jsonl", order="both")
    parts = datatools.assign(both, datatools.SplitConfig(ratio=[0.5, 0.5]))
    groups = [{r["meta"]["pair_group"] for r in v} for v in parts.values()]
    assert not groups[0] & groups[1] and len(parts["train"]) == len(parts["test"]) == 4
    with pytest.raises(GramrError, match="asks for more than the 10 records"):
        datatools.split_sizes(10, datatools.SplitConfig(count=[11]))
    with pytest.raises(GramrError, match="exactly one of --ratio or --count"):
        datatools.split_sizes(10, datatools.SplitConfig())
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in recs))
    s = datatools.split([src], tmp_path / "s", cfg)
    assert s.counts == {"in": 10, "train": 8, "test": 2}
    assert [r["id"] for r in readers.read_all([tmp_path / "s" / "test"])] == [r["id"] for r in p1["test"]]


def test_parquet_and_datasets_dir_give_the_same_records(tmp_path):
    import datasets
    rows = raw("helpsteer3.jsonl")
    ds = datasets.Dataset.from_list(rows)
    ds.to_parquet(str(tmp_path / "hs3.parquet"))
    ds.save_to_disk(str(tmp_path / "hs3_dir"))
    want = [r["id"] for r in load("helpsteer3.jsonl")[0]]
    for src in (tmp_path / "hs3.parquet", tmp_path / "hs3_dir"):
        skipped = Counter()
        got = [r for _, r in formats.convert([src], formats.ImportConfig(order="fixed"), skipped)]
        assert [r["id"] for r in got] == want and skipped == {"tie": 1}
        assert got[0]["rationale"] == load("helpsteer3.jsonl")[0][0]["rationale"]


def test_pairs_anthropic_hh_strings(tmp_path):
    p = tmp_path / "hh.jsonl"
    conv = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Capital of France?\n\nAssistant:"
    p.write_text(json.dumps({"chosen": conv + " Paris.", "rejected": conv + " Lyon."}) + "\n")
    ((_, r),) = formats.convert([p], formats.ImportConfig(order="fixed"), Counter())
    assert r["prompt"] == "Human: Hi\n\nAssistant: Hello!\n\nHuman: Capital of France?"
    assert (r["response_a"], r["response_b"], r["label"]) == ("Paris.", "Lyon.", "A")
    p.write_text(json.dumps({"chosen": conv + " Paris.", "rejected": "\n\nHuman: Other\n\nAssistant: x"}) + "\n")
    with pytest.raises(GramrError, match="line 1: 'chosen' and 'rejected' differ before"):
        list(formats.convert([p], formats.ImportConfig(), Counter()))


# ---------------------------------------------------------------- safe defaults (issue 13)

def test_default_import_balances_a_and_b_with_the_fixed_seed(tmp_path):
    """A prompt/chosen/rejected benchmark imported with every default: a seeded coin per pair, not all A."""
    src = tmp_path / "pcr.jsonl"
    src.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"}) + "\n"
                           for i in range(40)))
    s = data_import.run(formats.ImportConfig(), [src], tmp_path / "out")
    recs = readers.read_all([tmp_path / "out"])
    labels = Counter(r["label"] for r in recs)
    assert labels == {"A": 25, "B": 15} and s.metrics["labels"] == {"A": 25, "B": 15}
    assert all((r["response_a"] if r["label"] == "A" else r["response_b"]).startswith("good") for r in recs)
    fixed = [r for _, r in formats.convert([src], formats.ImportConfig(order="fixed"), Counter())]
    assert Counter(r["label"] for r in fixed) == {"A": 40}


def test_auto_detects_judgebench_prompt_chosen_rejected_with_its_category(tmp_path):
    row = {"pair_id": "p1", "original_id": 7, "source": "livebench-reasoning", "prompt": "q", "chosen": "good",
           "rejected": "bad"}
    src = tmp_path / "jb.jsonl"
    src.write_text(json.dumps(row) + "\n")
    detected: dict = {}
    (_, r), = formats.convert([src], formats.ImportConfig(order="fixed"), Counter(), detected)
    assert detected == {str(src): "judgebench"}
    assert (r["source"], r["label"], r["meta"]["category"], r["meta"]["subset"]) == ("judgebench", "A", "reasoning",
                                                                                     "livebench-reasoning")
    # the benchmark files of the other formats are recognised from their columns too
    assert formats.detect(raw("rmbench.json")[0], "x") == "rmbench"
    assert formats.detect(raw("rewardbench.jsonl")[0], "x") == "rewardbench"
    assert formats.detect(raw("judgebench.jsonl")[0], "x") == "judgebench"


def test_helpsteer3_drops_rows_whose_annotators_disagree_in_sign(tmp_path):
    base = {"context": "q", "response1": "one", "response2": "two", "overall_preference": 1}
    ann = lambda score: {"score": score, "reasoning": "@Response 2 is better.", "feedback1": "meh", "feedback2": "ok"}
    src = tmp_path / "hs3.jsonl"
    src.write_text("".join(json.dumps(dict(base, individual_preference=ps)) + "\n" for ps in
                           ([ann(2), ann(-1)], [ann(2), ann(0)], [])))
    skipped = Counter()
    recs = [r for _, r in formats.convert([src], formats.ImportConfig(format="helpsteer3", order="fixed"), skipped)]
    assert skipped == {"annotators_disagree": 1}
    assert [(r["label"], r["rationale"]) for r in recs] == [
        ("B", "Feedback: Response A: meh\nResponse B: ok\n\nComparison: Response B is better.\n\n"
              "Conclusion: Response B is better than Response A."),          # a 0-score annotator is not counted
        ("B", None)]                                                         # no annotator text: no rationale


# ---------------------------------------------------------------- Q&A dumps and --unlabeled (issue 13 item 2)

def test_qa_dump_gives_unlabeled_pairs_with_the_vote_preference_in_meta(tmp_path):
    """Top-voted answer vs each answer >= 1 vote below it; no label, the vote-derived gold in meta only."""
    s = data_import.run(formats.ImportConfig(order="fixed"), [FIX / "stackexchange.jsonl"], tmp_path / "out")
    recs = readers.read_all([tmp_path / "out"])
    # qid 101: 5 vs 4 and 5 vs 2 (nearest first); 102: one answer; 103: 3 vs 3 tie; 104: 6 vs 1 and 6 vs 0
    assert [(r["meta"]["qid"], r["meta"]["scores"]) for r in recs] == [
        (101, [5.0, 4.0]), (101, [5.0, 2.0]), (104, [6.0, 1.0]), (104, [6.0, 0.0])]
    assert [r["label"] for r in recs] == [None] * 4
    assert [r["meta"]["gold_label"] for r in recs] == ["A"] * 4
    assert [r["meta"]["vote_margin"] for r in recs] == [1.0, 3.0, 5.0, 6.0]
    assert recs[0]["response_a"].startswith("Use slicing") and recs[0]["response_b"].startswith("`list(reversed")
    assert s.skipped == {"qa_no_pair": 2} and s.metrics["formats"] == {str(FIX / "stackexchange.jsonl"): "qa"}


def test_qa_dump_random_order_swaps_the_gold_with_the_responses(tmp_path):
    data_import.run(formats.ImportConfig(), [FIX / "stackexchange.jsonl"], tmp_path / "out")
    recs = readers.read_all([tmp_path / "out"])
    assert len(recs) == 4
    for r in recs:
        best_first = r["meta"]["order"] == "ab"
        assert r["meta"]["gold_label"] == ("A" if best_first else "B")
        top = r["response_a"] if best_first else r["response_b"]
        assert top.startswith(("Use slicing", "`wc -l"))
        assert r["label"] is None


def test_unlabeled_moves_any_label_to_meta_gold_and_drops_rationales(tmp_path):
    cfg = formats.ImportConfig(format="helpsteer3", order="fixed", unlabeled=True)
    data_import.run(cfg, [FIX / "helpsteer3.jsonl"], tmp_path / "u")
    data_import.run(formats.ImportConfig(format="helpsteer3", order="fixed"), [FIX / "helpsteer3.jsonl"],
                    tmp_path / "l")
    unl, lab = readers.read_all([tmp_path / "u"]), readers.read_all([tmp_path / "l"])
    assert [r["id"] for r in unl] == [r["id"] for r in lab] and len(unl) >= 2
    assert [r["meta"]["gold_label"] for r in unl] == [r["label"] for r in lab]
    assert {r["label"] for r in unl} == {None} and {r["rationale"] for r in unl} == {None}


def test_qa_row_with_a_non_numeric_score_is_one_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q?", "answers": [{"text": "a", "pm_score": "high"},
                                                            {"text": "b", "pm_score": 1}]}) + "\n")
    with pytest.raises(GramrError, match=r"answers\[0\] needs a numeric 'pm_score'"):
        data_import.run(formats.ImportConfig(), [bad], tmp_path / "out")
