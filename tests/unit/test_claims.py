"""core/claims: a proof's checks against its pair and label (ours), on every synth family's gold rationale."""

from __future__ import annotations

import random

import pytest

from gramr2_cli.core import claims
from gramr2_cli.stages import synth, synth_families


def shown(p, label):
    return (p.right, p.wrong) if label == "A" else (p.wrong, p.right)


@pytest.mark.parametrize("family", sorted(synth_families.FAMILIES))
def test_gold_rationales_pass_and_the_other_label_fails(family):
    rng = random.Random(3)
    for _ in range(40):
        p = synth_families.FAMILIES[family].make(rng, "train")
        for label in "AB":
            gold = synth.gold_rationale(p, label)
            assert claims.problems(gold, *shown(p, label), label) == []
            # the same text offered as a proof of the other label contradicts it
            assert claims.problems(gold, *shown(p, label), "B" if label == "A" else "A") != []


DEC = ("Feedback: Response A says 3.93. Response B says 3.46.\n\n"
       "Comparison: 3.46 vs 3.93: the smaller is {check}. Response {who} says {quote}.\n\n"
       "Conclusion: Response {concl} is better.")
A, B = "3.93 is smaller.", "3.46 is smaller."


@pytest.mark.parametrize(("fill", "want"), [
    (dict(check="3.46", who="B", quote="3.46", concl="B"), []),
    (dict(check="3.93", who="B", quote="3.46", concl="B"), ["check_ends_in_another_claim"]),
    (dict(check="3.46", who="A", quote="3.93", concl="B"), ["quotes_another_claim"]),
    (dict(check="3.46", who="B", quote="3.93", concl="B"), ["quotes_another_claim"]),
    (dict(check="3.4", who="B", quote="3.46", concl="B"), ["check_ends_in_another_claim"]),   # 3.4 is not 3.46
    (dict(check="3.46", who="B", quote="3.46", concl="A"), ["concludes_other_label"]),
])
def test_each_contradiction_is_named(fill, want):
    assert claims.problems(DEC.format(**fill), A, B, "B") == want


def test_misquotes_and_mentions_are_whole_claims():
    good = DEC.format(check="3.46", who="B", quote="3.46", concl="B")
    assert claims.problems(good, "3.9 is smaller.", B, "B") == ["misquotes_A"]
    assert claims.problems(good.replace("3.93", "3.9"), "3.9 is smaller.", B, "B") == []
    # "5.5" is not mentioned by "5.50": the check below ends in neither claim
    five = ("Feedback: Response A says 5.5. Response B says 5.47.\n\nComparison: 5.47 vs 5.50: the larger is 5.50. "
            "Response A says 5.5.\n\nConclusion: Response A is better.")
    assert claims.problems(five, "5.5 is larger.", "5.47 is larger.", "A") == ["check_ends_in_another_claim"]
    upper = ("Feedback: Response A says ORBlT. Response B says ORBIT.\n\nComparison: 'orbit' in capitals is ORBIT. "
             "Response B says ORBIT.\n\nConclusion: Response B is better.")
    assert claims.problems(upper, "ORBlT", "ORBIT", "B") == []
    assert claims.problems(upper.replace("capitals is ORBIT", "capitals is 0RBIT"), "ORBlT", "ORBIT", "B") == \
        ["check_names_no_claim"]


def test_other_shapes_get_only_the_conclusion_check():
    free = "Feedback: A is polite.\n\nComparison: B ignores the question.\n\nConclusion: Response A is better."
    assert claims.problems(free, "x", "y", "A") == []
    assert claims.problems(free, "x", "y", "B") == ["concludes_other_label"]
