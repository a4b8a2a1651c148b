"""data synth: balance, no length/position tells, gold labels verified by code, rationale structure, held-out
words/numbers/families, determinism, and the CLI (byte-identical reruns, resume, one-line errors)."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gramr2_cli.cli import app
from gramr2_cli.core import prompts, records
from gramr2_cli.core.errors import GramrError
from gramr2_cli.stages import synth
from gramr2_cli.stages.synth_families import FAMILIES, pool_of

runner = CliRunner()
LABELED_SPLITS = ("labeled", "test", "adapt", "adapt_test")


@pytest.fixture(scope="module")
def data():
    """Every family: easy + hard in the main splits, the heldout ones in the adapt splits (n=220 -> 20 a family)."""
    return synth.generate(synth.SynthConfig(n=220, families=["easy", "hard"]), seed=0)


def _gold(r):
    return r["meta"]["gold_label"]


def test_split_sizes_and_families(data):
    assert {s: len(v) for s, v in data.items()} == {"labeled": 220, "unlabeled": 220, "test": 110, "adapt": 55,
                                                    "adapt_test": 55}
    main = {f for f, fam in FAMILIES.items() if fam.difficulty in ("easy", "hard")}
    held = {f for f, fam in FAMILIES.items() if fam.difficulty == "heldout"}
    for split in ("labeled", "unlabeled", "test"):
        counts = Counter(r["meta"]["family"] for r in data[split])
        assert set(counts) == main and max(counts.values()) - min(counts.values()) <= 1
    for split in ("adapt", "adapt_test"):
        assert {r["meta"]["family"] for r in data[split]} == held


def test_default_mix_is_the_easy_families():
    out = synth.generate(synth.SynthConfig(n=24), seed=0)
    easy = {f for f, fam in FAMILIES.items() if fam.difficulty == "easy"}
    assert len(out["labeled"]) == 24 and {r["meta"]["family"] for r in out["labeled"]} == easy
    assert all(r["meta"]["difficulty"] == "easy" for r in out["labeled"])


def test_families_all_with_the_default_splits_holds_out_the_adapt_families():
    """Issue 17 item 12: `--families all` used to fail ('unit_convert' is in both ...) with the default splits."""
    out = synth.generate(synth.SynthConfig(n=40, families=["all"]), seed=0)
    heldout = {f for f, fam in FAMILIES.items() if fam.difficulty == "heldout"}
    assert {r["meta"]["family"] for r in out["labeled"]} == set(FAMILIES) - heldout
    assert {r["meta"]["family"] for r in out["adapt"]} == heldout


def test_ab_balanced_exactly_per_split_and_within_one_per_family(data):
    for split, recs in data.items():
        c = Counter(_gold(r) for r in recs)
        assert abs(c["A"] - c["B"]) == len(recs) % 2, (split, c)
        for fam in {r["meta"]["family"] for r in recs}:
            cf = Counter(_gold(r) for r in recs if r["meta"]["family"] == fam)
            assert abs(cf["A"] - cf["B"]) <= 1, (split, fam, cf)


def _heuristic_accuracy(recs, pick):
    return sum(pick(r) == _gold(r) for r in recs) / len(recs)


def _longer(r):
    a, b = len(r["response_a"]), len(r["response_b"])
    return "B" if b > a else "A"  # a tie picks A


def _shorter(r):
    a, b = len(r["response_a"]), len(r["response_b"])
    return "B" if b < a else "A"


@pytest.mark.parametrize("families", [[], ["easy", "hard"], ["heldout"]], ids=["default", "easy+hard", "heldout"])
def test_length_and_position_heuristics_score_chance(families):
    """400 pairs: pick-the-longer, pick-the-shorter and always-A all land within 50 ± 8%."""
    recs = synth.generate(synth.SynthConfig(n=400, families=families, adapt_families=["easy"] if families ==
                                            ["heldout"] else [], splits=synth.SplitSizes(unlabeled=0, test=0)),
                          seed=3)["labeled"]
    assert len(recs) == 400
    for pick in (_longer, _shorter, lambda r: "A"):
        assert 0.42 <= _heuristic_accuracy(recs, pick) <= 0.58
    # where lengths differ at all, the longer response is right about half the time
    differ = [r for r in recs if len(r["response_a"]) != len(r["response_b"])]
    assert differ and 0.35 <= _heuristic_accuracy(differ, _longer) <= 0.65


def test_gold_label_is_right_by_an_independent_checker(data):
    for split, recs in data.items():
        for r in recs:
            check = FAMILIES[r["meta"]["family"]].check
            right = r["response_a"] if _gold(r) == "A" else r["response_b"]
            wrong = r["response_b"] if _gold(r) == "A" else r["response_a"]
            assert check(r["prompt"], right), (split, r["prompt"], right)
            assert not check(r["prompt"], wrong), (split, r["prompt"], wrong)
            assert right != wrong


def test_checkers_reject_malformed_answers(data):
    for r in data["labeled"][:40]:
        check = FAMILIES[r["meta"]["family"]].check
        for junk in ("", "banana", "A", "42"):
            assert not check(r["prompt"], junk), (r["prompt"], junk)


def test_rationales_are_intact_and_conclude_the_gold_label(data):
    for split in LABELED_SPLITS:
        for r in data[split]:
            assert r["label"] == _gold(r)
            assert prompts.structure_problems(prompts.judgment_text(r["rationale"], r["label"])) == []
            assert prompts.conclusion_label(r["rationale"]) == r["label"]
            sections = prompts.split_sections(r["rationale"])
            claims = re.fullmatch(r"Response A says (.+)\. Response B says (.+)\.", sections["Feedback"])
            assert claims, sections["Feedback"]                      # claim-first: A's claim, then B's
            claim_a, claim_b = claims.groups()
            assert claim_a in r["response_a"] and claim_b in r["response_b"] and claim_a != claim_b
            right_claim = claim_a if r["label"] == "A" else claim_b
            said = re.search(r"Response ([AB]) (?:says (.+)|lists \d.*)\.$", sections["Comparison"])
            assert said and said.group(1) == r["label"], sections["Comparison"]
            if r["meta"]["family"] != "word_count":                  # the check ends in the right claim's text
                assert said.group(2) == right_claim
                assert right_claim in sections["Comparison"][:said.start()]
    for r in data["unlabeled"]:
        assert r["label"] is None and r["rationale"] is None and _gold(r) in ("A", "B")


def test_per_response_rationales_judge_each_response_in_a_b_order():
    cfg = synth.SynthConfig(n=40, families=["easy"], rationale="per-response")
    for r in synth.generate(cfg, seed=3)["labeled"]:
        sections = prompts.split_sections(r["rationale"])
        comparison = sections["Comparison"]
        assert comparison.index("Response A") < comparison.index("Response B")  # A first, never right-first
        right, wrong = ("A", "B") if r["label"] == "A" else ("B", "A")
        assert re.search(rf"Response {right} [^;]*right", comparison) and re.search(rf"Response {wrong} .*wrong",
                                                                                   comparison)
        assert prompts.conclusion_label(r["rationale"]) == r["label"]


def test_rationale_style_is_checked_and_keeps_the_pairs():
    with pytest.raises(GramrError, match="rationale: unknown value 'terse'"):
        synth.generate(synth.SynthConfig(n=8, rationale="terse"), seed=0)
    a = synth.generate(synth.SynthConfig(n=24), seed=5)
    b = synth.generate(synth.SynthConfig(n=24, rationale="per-response"), seed=5)
    assert [r["id"] for r in a["test"]] == [r["id"] for r in b["test"]]   # same pairs, other gold text
    assert [r["rationale"] for r in a["labeled"]] != [r["rationale"] for r in b["labeled"]]


def test_records_schema_and_stable_ids(data):
    for split, recs in data.items():
        for r in recs:
            assert r == records.normalize(r)
            assert r["id"] == records.make_id(r["prompt"], r["response_a"], r["response_b"])
            assert r["source"] == "synth"
            m = r["meta"]
            assert m["split"] == split and m["category"] == m["family"]
            assert m["difficulty"] == FAMILIES[m["family"]].difficulty
    ids = [r["id"] for recs in data.values() for r in recs]
    assert len(ids) == len(set(ids))


def test_test_splits_hold_out_words_numbers_and_families(data):
    def atoms(splits):
        return {a for s in splits for r in data[s] for a in r["meta"]["operands"]}
    for recs in data.values():
        for r in recs:
            assert r["meta"]["operands"] and all(a in r["prompt"] + r["response_a"] + r["response_b"]
                                                 for a in r["meta"]["operands"])
    train, test = atoms(("labeled", "unlabeled", "adapt")), atoms(("test", "adapt_test"))
    assert train and test and not train & test
    assert {pool_of(a) for a in train} == {"train"} and {pool_of(a) for a in test} == {"test"}
    main = {r["meta"]["family"] for s in ("labeled", "unlabeled", "test") for r in data[s]}
    assert not main & {r["meta"]["family"] for s in ("adapt", "adapt_test") for r in data[s]}
    problems = [(r["prompt"], r["meta"]["gold_label"]) for recs in data.values() for r in recs]
    assert len({p for p, _ in problems}) >= 0.95 * len(problems)  # near-unique prompts across splits


def test_deterministic_per_seed():
    cfg = synth.SynthConfig(n=40)
    assert synth.generate(cfg, 7) == synth.generate(cfg, 7)
    assert [r["id"] for r in synth.generate(cfg, 7)["labeled"]] != [r["id"] for r in synth.generate(cfg, 8)["labeled"]]


def test_config_errors():
    with pytest.raises(GramrError, match="unknown family 'nope'.*decimal_compare.*reverse_word"):
        synth.generate(synth.SynthConfig(families=["easy", "nope"]), 0)
    with pytest.raises(GramrError, match="'unit_convert' is in both"):
        synth.generate(synth.SynthConfig(families=["easy", "unit_convert"]), 0)   # named in both
    with pytest.raises(GramrError, match="every family chosen is held out"):
        synth.generate(synth.SynthConfig(families=["heldout"]), 0)
    with pytest.raises(GramrError, match="synth.n must be >= 1"):
        synth.generate(synth.SynthConfig(n=0), 0)
    with pytest.raises(GramrError, match="ran out of distinct problems"):
        synth.generate(synth.SynthConfig(n=5000, families=["last_letter"]), 0)
    only = synth.generate(synth.SynthConfig(n=10, splits=synth.SplitSizes(unlabeled=0, test=0, adapt=0,
                                                                          adapt_test=0)), 0)
    assert list(only) == ["labeled"]


def test_tiny_pairs_fixture_is_labeled_synth(tiny_pairs):
    recs = [json.loads(line) for line in Path(tiny_pairs).read_text().splitlines()]
    assert len(recs) == 24 and all(r["label"] in ("A", "B") and r["rationale"] for r in recs)


# ---------------------------------------------------------------- CLI

def _parts(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.glob("*/part-*.jsonl"))}


def _synth(*args):
    return runner.invoke(app, ["data", "synth", *args])


def test_cli_writes_split_dirs_byte_identical_and_resumes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    r = _synth("--n", "24", "--seed", "1", "-o", str(a))
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in a.iterdir() if p.is_dir()) == sorted(synth.SPLITS)
    for split in synth.SPLITS:
        assert {"manifest.json", "config.yaml", "summary.json"} <= {p.name for p in (a / split).iterdir()}
        assert json.loads((a / split / "manifest.json").read_text())["done"] is True
    labeled = [json.loads(x) for x in (a / "labeled" / "part-00000-of-00001.jsonl").read_text().splitlines()]
    assert len(labeled) == 24 and Counter(x["label"] for x in labeled) == {"A": 12, "B": 12}
    assert json.loads((a / "summary.json").read_text())["counts"]["labeled"] == 24
    assert "decimal_compare" in r.output and "12 / 12" in r.output  # the family table

    assert _synth("--n", "24", "--seed", "1", "-o", str(b)).exit_code == 0
    assert _parts(a) == _parts(b) and len(_parts(a)) == 5
    assert _synth("--n", "24", "--seed", "2", "-o", str(c)).exit_code == 0
    assert _parts(c) != _parts(a)

    # same args again: every split skipped, nothing duplicated
    before = _parts(a)
    r = _synth("--n", "24", "--seed", "1", "-o", str(a))
    assert r.exit_code == 0 and _parts(a) == before
    assert json.loads((a / "summary.json").read_text())["skipped"] == {"already_done": 24 + 24 + 12 + 6 + 6}

    # a run killed mid-split resumes to the same bytes
    part = b / "labeled" / "part-00000-of-00001.jsonl"
    lines = part.read_bytes().splitlines(keepends=True)
    part.write_bytes(b"".join(lines[:10]) + lines[10][:25])  # truncated last line, as a kill leaves it
    man = json.loads((b / "labeled" / "manifest.json").read_text())
    (b / "labeled" / "manifest.json").write_text(json.dumps({**man, "done": False}))
    assert _synth("--n", "24", "--seed", "1", "-o", str(b)).exit_code == 0
    assert _parts(b) == before


def test_cli_recipe_overrides_and_families(tmp_path):
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "synth.yaml"
    r = _synth("-c", str(recipe), "--n", "12", "--families", "reverse_word,add_2digit", "-s",
               "synth.splits.adapt=0", "-s", "synth.splits.adapt_test=0", "-o", str(tmp_path / "o"))
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if p.is_dir()) == ["labeled", "test", "unlabeled"]
    recs = [json.loads(x) for x in (tmp_path / "o" / "test" / "part-00000-of-00001.jsonl").read_text().splitlines()]
    assert Counter(x["meta"]["family"] for x in recs) == {"reverse_word": 3, "add_2digit": 3}


def test_cli_errors_are_one_line(tmp_path):
    r = _synth("--n", "8", "--families", "easy,bogus", "-o", str(tmp_path / "x"))
    assert r.exit_code == 1
    assert "unknown family 'bogus'" in r.output and "last_letter" in r.output
    assert _synth("--n", "8", "-o", str(tmp_path / "y")).exit_code == 0
    r = _synth("--n", "8", "--seed", "5", "-o", str(tmp_path / "y"))
    assert r.exit_code == 1 and "different config" in r.output
    assert _synth("--n", "8", "--seed", "5", "-o", str(tmp_path / "y"), "--overwrite").exit_code == 0


def test_both_orders_writes_each_training_pair_swapped_with_its_rationale():
    one = synth.generate(synth.SynthConfig(n=30), seed=4)
    two = synth.generate(synth.SynthConfig(n=30, both_orders=True), seed=4)
    assert len(two["labeled"]) == 60 and len(two["test"]) == len(one["test"])      # test pairs untouched
    assert [r["id"] for r in two["test"]] == [r["id"] for r in one["test"]]
    by_prompt: dict[str, list[dict]] = {}
    for r in two["labeled"]:
        by_prompt.setdefault(r["prompt"], []).append(r)
    assert len(by_prompt) == 30
    for x, y in by_prompt.values():
        assert (x["response_a"], x["response_b"]) == (y["response_b"], y["response_a"])
        assert {x["label"], y["label"]} == {"A", "B"}
        for r in (x, y):
            assert prompts.conclusion_label(r["rationale"]) == r["label"] == _gold(r)
            assert r["rationale"].startswith("Feedback: Response A says ")
