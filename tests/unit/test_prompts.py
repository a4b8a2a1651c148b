import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gramr2_cli import prompts
from gramr2_cli.errors import GramrError


@pytest.mark.parametrize("text, want", [
    ("<think>x</think>\n<answer>\nA\n</answer>", "A"),
    ("<answer>B</answer>", "B"),
    ("<answer> response b </answer>", "B"),
    ("<answer>Response A</answer>", "A"),
    ("<answer>[[A]]</answer>", "A"),
    ("<answer>**B**</answer>", "B"),
    ("<ANSWER>a</ANSWER>", "A"),
    ("<answer>Assistant B is better</answer>", "B"),
    ("<answer>A or B</answer>", None),
    ("<answer>A</answer> <answer>B</answer>", None),
    ("<answer>A</answer> <answer>A</answer>", "A"),
    ("<answer>A", None),                       # unclosed
    ("The answer is A", None),                 # no tags: the authors' parser bug would read this
    ("<answer></answer>", None),
    ("<answer>Both</answer>", None),
    ("", None),
])
def test_parse_verdict(text, want):
    assert prompts.parse_verdict(text) == want


@given(st.text())
@settings(max_examples=300, deadline=None)
def test_parse_verdict_never_crashes(text):
    assert prompts.parse_verdict(text) in (None, "A", "B")


@given(st.text(alphabet=st.characters(blacklist_characters="<>AB"), max_size=40),
       st.sampled_from(["A", "B"]))
@settings(max_examples=200, deadline=None)
def test_parse_verdict_finds_letter_in_clean_block(noise, letter):
    text = f"<think>{noise}</think>\n<answer>\n{letter}\n</answer>{noise}"
    assert prompts.parse_verdict(text) == letter


@given(st.text(min_size=1, max_size=30).filter(lambda s: ":" not in s and s.strip()),
       st.text(min_size=1, max_size=30).filter(lambda s: ":" not in s and s.strip()),
       st.text(min_size=1, max_size=30).filter(lambda s: ":" not in s and s.strip()))
@settings(max_examples=200, deadline=None)
def test_proof_rationale_round_trip(f, c, k):
    # section names inside the text would be ambiguous; the generator never produces "Feedback:" etc.
    r = prompts.format_rationale(f, c, k)
    assert prompts.proof_to_rationale(prompts.rationale_to_proof(r)) == r


def test_judgment_text_structure_and_conclusion():
    r = prompts.format_rationale("A says 3, B says 4.", "3 is right.", "Response A is better.")
    text = prompts.judgment_text(r, "A")
    assert text == f"<think>\n{r}\n</think>\n<answer>\nA\n</answer>"
    assert prompts.structure_problems(text) == []
    assert prompts.parse_rationale(text) == r
    assert prompts.conclusion_label(r) == "A"
    assert prompts.structure_problems("<answer>A</answer>") == ["no_think", "missing_feedback",
                                                                 "missing_comparison", "missing_conclusion"]
    gram = "<think>\nFeedback: x\n\nComparision: y\n\nConclusion: z\n</think>\n<answer>\nB\n</answer>"
    assert prompts.structure_problems(gram) == []   # the authors' spelling is accepted
    assert prompts.conclusion_label("Feedback: a\nComparison: b\nConclusion: A and B both fine") is None


def test_gram_rr_template_is_byte_exact():
    from pathlib import Path
    shipped = Path(__file__).resolve().parents[2] / "src/gramr2_cli/templates/gram_rr_judge.txt"
    msgs = prompts.judge_messages("Q{x}", "RA", "RB", "gram-rr")
    want = shipped.read_text().replace("{user_input}", "Q{x}").replace("{response_1}", "RA").replace(
        "{response_2}", "RB")
    assert msgs == [{"role": "user", "content": want}]
    assert "Comparision:" in want and "[The Start of Assistant A's Response]\nRA\n" in want
    with pytest.raises(GramrError, match="unknown prompt version"):
        prompts.judge_messages("q", "a", "b", "v9")


def test_prover_messages_need_label():
    assert "Response B is better" in prompts.prover_messages("q", "a", "b", "B")[1]["content"]
    with pytest.raises(GramrError):
        prompts.prover_messages("q", "a", "b", None)
