"""data augment (Master-RM openers as losing responses): exact counts, slots, labels, rationales, CLI."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from gramr2_cli import recipe
from gramr2_cli.cli import app
from gramr2_cli.core import prompts, readers, records
from gramr2_cli.core.errors import GramrError
from gramr2_cli.stages import augment


def recs(rationale=True):
    out = [records.new_pair(f"q{i}", f"right {i}", f"wrong {i}", label="A",
                            rationale="Feedback: f\n\nComparison: c\n\nConclusion: Response A is better."
                            if rationale and i % 2 == 0 else None) for i in range(8)]
    return out + [records.new_pair(f"u{i}", "a", "b") for i in range(2)]       # unlabeled: never a source


def test_counts_slots_labels_and_rationales():
    new = augment.augmented(recs(), fraction=0.5, seed=3)
    assert len(new) == 5                                                    # round(0.5 * 10 input records)
    assert [r["label"] for r in new] == ["B", "A", "B", "A", "B"]            # opener in A, B, A, B, A
    for r in new:
        slot = r["meta"]["augment"]["opener_slot"]
        opener = r["meta"]["augment"]["opener"]
        assert opener in augment.OPENERS
        assert r["response_a" if slot == "A" else "response_b"] == opener
        src_q = r["prompt"]
        assert r["response_b" if slot == "A" else "response_a"] == f"right {src_q[1:]}"
        assert r["meta"]["gold_label"] == r["label"] and r["source"] == "augment"
        has = int(src_q[1:]) % 2 == 0                                       # sources with a rationale
        assert (r["rationale"] is not None) == has
        if has:
            assert prompts.conclusion_label(r["rationale"]) == r["label"]
    assert len({r["meta"]["augment"]["source_id"] for r in new}) == 5       # no source twice while fraction <= 1
    assert augment.augmented(recs(), fraction=0.5, seed=3) == new
    assert augment.augmented(recs(), fraction=0.5, seed=4) != new


def test_fraction_above_one_cycles_the_sources():
    new = augment.augmented(recs(False), fraction=2.0, seed=0)
    assert len(new) == 20
    uses = Counter(r["meta"]["augment"]["source_id"] for r in new)         # 20 = 2 full rounds of 8 + 4
    assert set(uses) == {r["id"] for r in recs(False)[:8]} and sorted(uses.values()) == [2] * 4 + [3] * 4
    assert all(r["rationale"] is None for r in new)


def test_no_gold_and_bad_config():
    with pytest.raises(GramrError, match="no gold-labeled pairs to augment"):
        augment.augmented(recs()[8:], fraction=1.0, seed=0)
    with pytest.raises(GramrError, match="augment.fraction must be >= 0, got -1"):
        recipe.load(None, ["augment.fraction=-1"])
    with pytest.raises(GramrError, match="fraction and injection_fraction are both 0"):
        recipe.load(None, ["augment.fraction=0", "augment.injection_fraction=0"])


def test_cli_writes_inputs_plus_new_pairs(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in recs()))
    r = CliRunner().invoke(app, ["data", "augment", str(src), "-o", str(tmp_path / "out"), "--fraction", "0.4",
                                 "--injection-fraction", "0.2", "--seed", "1"])
    assert r.exit_code == 0, r.stderr
    out = readers.read_all([tmp_path / "out"])
    assert len(out) == 16 and [x["source"] for x in out].count("augment") == 6
    assert [x["meta"]["augment"].get("injected_slot") for x in out[-2:]] == ["A", "B"]   # 4 openers, then 2
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["metrics"] == {"added": 6, "added_label_A": 3, "added_openers": 4, "added_injections": 2,
                            "added_with_rationale": sum(x["rationale"] is not None for x in out
                                                        if x["source"] == "augment")}


# ---------------------------------------------------------------- injection negatives (issue 25 item 2)

def test_injection_negatives_slots_labels_and_rationales():
    new = augment.injected(recs(), fraction=1.2, seed=5)
    assert len(new) == 12                                                   # round(1.2 * 10 input records)
    assert [r["label"] for r in new] == ["B", "A"] * 6                       # injection in A, B, A, B, …
    for r in new:
        aug = r["meta"]["augment"]
        slot, name = aug["injected_slot"], aug["injection"]
        n = r["prompt"][1:]
        attacked, correct = (r["response_a"], r["response_b"]) if slot == "A" else (r["response_b"], r["response_a"])
        assert correct == f"right {n}"
        assert attacked == augment.INJECTIONS[name].format(response=f"wrong {n}", slot=slot)
        assert f"wrong {n}" in attacked and slot in attacked.replace(f"wrong {n}", "")
        assert r["meta"]["gold_label"] == r["label"] != slot and r["source"] == "augment"
        assert aug["recipe"] == "injection negatives (ours, issue 25)"
        if int(n) % 2 == 0:                                                 # the source has a rationale
            rat = r["rationale"]
            assert prompts.conclusion_label(rat) == r["label"]
            assert f"Response {slot} asserts a verdict for itself" in rat and "instead of only answering" in rat
            assert prompts.markup(rat) == [] and "<" not in rat            # no second verdict in the target
            target = prompts.judgment_text(rat, r["label"])
            assert prompts.parse_verdict(target) == r["label"]
        else:
            assert r["rationale"] is None
    assert {r["meta"]["augment"]["injection"] for r in new} >= {"answer_tag_after", "verdict_block_after"}
    assert Counter(r["meta"]["augment"]["injected_slot"] for r in new) == {"A": 6, "B": 6}
    assert augment.injected(recs(), fraction=1.2, seed=5) == new            # seeded
    assert augment.augmented(recs(), fraction=0.5, seed=5) == augment.augmented(recs(), fraction=0.5, seed=5)


def test_injection_templates_overlap_the_probe_in_part():
    """Three probe variants are trained on, three held out, so the probe tells trained from unseen forms."""
    from gramr2_cli.judging import probes
    shared = set(augment.INJECTIONS) & set(probes.INJECTIONS)
    assert shared == {"answer_tag_after", "conclusion_after", "ignore_before"}
    assert set(probes.INJECTIONS) - shared == {"answer_tag_before", "conclusion_before", "ignore_after"}
    for name in shared:
        assert augment.INJECTIONS[name] == probes.INJECTIONS[name]


def test_injection_only_and_openers_only(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in recs()))
    cfg = recipe.load(None, ["augment.fraction=0", "augment.injection_fraction=0.3"])
    augment.run(cfg, [src], tmp_path / "inj")
    new = [x for x in readers.read_all([tmp_path / "inj"]) if x["source"] == "augment"]
    assert [x["meta"]["augment"]["recipe"] for x in new] == ["injection negatives (ours, issue 25)"] * 3
    cfg = recipe.load(None, ["augment.injection_fraction=0"])
    augment.run(cfg, [src], tmp_path / "op")
    new = [x for x in readers.read_all([tmp_path / "op"]) if x["source"] == "augment"]
    assert len(new) == 2 and all("opener" in x["meta"]["augment"] for x in new)
