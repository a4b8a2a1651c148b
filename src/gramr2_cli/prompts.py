"""Judge and prover prompts, the output format, the verdict parser, and the proof <-> rationale reform.

Prompt versions (every judged record says which one produced it, in `meta.prompt_version`):
- `gramr2-v1`: the project default, a few lines so a pair stays near 150 tokens on CPU, with a one-line
  system turn instead of the chat template's long default one.
- `gram-rr`: the template the released GRAM-R² checkpoints were trained on, byte-exact (authors' spelling
  "Comparision" included), sent as one user turn through the model's chat template.
The reply format: `<think>\\nFeedback: …\\n\\nComparison: …\\n\\nConclusion: …\\n</think>\\n<answer>\\nA\\n</answer>`.
"""

from __future__ import annotations

import re
from importlib import resources

from .errors import GramrError

ANSWER_OPEN = "<answer>"
ANSWER_PREFIX = "<answer>\n"   # the verdict token follows this; the answer-token probability is read here
SECTIONS = ("Feedback", "Comparison", "Conclusion")

_V1_SYSTEM = "You are a careful judge. You compare two responses to a question and pick the better one."
_V1_USER = (
    "Which response answers the question correctly and better?\n"
    "[Question]\n{user_input}\n"
    "[Response A]\n{response_1}\n"
    "[Response B]\n{response_2}\n"
    "Reply as <think>Feedback: … Comparison: … Conclusion: …</think><answer>A or B</answer>."
)
_PROVER_SYSTEM = "You are a careful judge. You explain why the given response is the better one."
_PROVER_USER = (
    "[Question]\n{user_input}\n"
    "[Response A]\n{response_1}\n"
    "[Response B]\n{response_2}\n"
    "Response {label} is better. Prove it: write Feedback: … Comparison: … Conclusion: …"
)


def _gram_rr_template() -> str:
    return resources.files("gramr2_cli").joinpath("templates/gram_rr_judge.txt").read_text(encoding="utf-8")


PROMPT_VERSIONS = ("gramr2-v1", "gram-rr")


def judge_messages(prompt: str, response_a: str, response_b: str, version: str = "gramr2-v1") -> list[dict]:
    """Chat messages asking the reward model to judge (prompt, A, B). Raises GramrError for an unknown version."""
    if version == "gramr2-v1":
        user = _V1_USER.format(user_input=prompt, response_1=response_a, response_2=response_b)
        return [{"role": "system", "content": _V1_SYSTEM}, {"role": "user", "content": user}]
    if version == "gram-rr":
        # str.replace, not format: the template has no other braces today, but user text must never be parsed.
        text = (_gram_rr_template().replace("{user_input}", prompt).replace("{response_1}", response_a)
                .replace("{response_2}", response_b))
        return [{"role": "user", "content": text}]
    raise GramrError(f"unknown prompt version {version!r}; choose from {', '.join(PROMPT_VERSIONS)}")


def prover_messages(prompt: str, response_a: str, response_b: str, label: str) -> list[dict]:
    """Prover input (s, l) of Eq. 4: the pair plus the given label; the target is a proof."""
    if label not in ("A", "B"):
        raise GramrError(f"the prover needs a label A or B, got {label!r}")
    user = _PROVER_USER.format(user_input=prompt, response_1=response_a, response_2=response_b, label=label)
    return [{"role": "system", "content": _PROVER_SYSTEM}, {"role": "user", "content": user}]


def unconditional_messages() -> list[dict]:
    """The empty context of Eq. 5's denominator, log π(z): the prover's system turn and an empty user turn,
    so π(z) is the proof's probability with no pair and no label in view."""
    return [{"role": "system", "content": _PROVER_SYSTEM}, {"role": "user", "content": ""}]


def render(tokenizer, messages: list[dict]) -> str:
    """Messages → the model's prompt text through its chat template, with the generation prompt added."""
    if not getattr(tokenizer, "chat_template", None):
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


# ---------------------------------------------------------------- output format

def format_rationale(feedback: str, comparison: str, conclusion: str, spelling: str = "Comparison") -> str:
    """The text inside <think>…</think> from its three parts."""
    return f"Feedback: {feedback.strip()}\n\n{spelling}: {comparison.strip()}\n\nConclusion: {conclusion.strip()}"


def judgment_text(rationale: str | None, label: str) -> str:
    """The reward model's target/reply: `<think>\\n…\\n</think>\\n<answer>\\nX\\n</answer>` (no think when None)."""
    think = f"<think>\n{rationale.strip()}\n</think>\n" if rationale else ""
    return f"{think}{ANSWER_PREFIX}{label}\n</answer>"


_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_THINK_RE = re.compile(r"<think>(.*?)</think>", re.S | re.I)
_LETTER_RE = re.compile(r"(?<![A-Za-z])([AB])(?![A-Za-z])")
_STRIP = " \t\r\n*_`'\"[](){}.:!,;-"


def _verdict_of(inner: str) -> str | None:
    s = inner.strip(_STRIP)
    s = re.sub(r"^(the\s+)?(response|assistant|answer|output)\s*", "", s, flags=re.I).strip(_STRIP)
    if s.upper() in ("A", "B"):
        return s.upper()
    letters = set(_LETTER_RE.findall(inner))  # case-sensitive: the article "a" is not a verdict
    return letters.pop() if len(letters) == 1 else None


def parse_verdict(text: str) -> str | None:
    """The verdict between `<answer>` and `</answer>`: "A", "B", or None when absent or ambiguous.

    Tolerates whitespace, case, "Response A", `[[A]]`, `**B**`. Several answer blocks that disagree,
    an unclosed block, "A or B", or no letter → None (the caller counts it as unparseable).
    """
    verdicts = {_verdict_of(m) for m in _ANSWER_RE.findall(text or "")}
    if len(verdicts) != 1:
        return None
    return verdicts.pop()


def parse_rationale(text: str) -> str | None:
    """The text inside the first <think>…</think>, stripped; None when there is none."""
    m = _THINK_RE.search(text or "")
    return m.group(1).strip() if m else None


_SECTION_RE = re.compile(r"(Feedback|Compari(?:s|si)on|Conclusion)\s*:", re.I)


def split_sections(rationale: str) -> dict[str, str]:
    """{'Feedback': …, 'Comparison': …, 'Conclusion': …} for the sections present (either spelling)."""
    found = list(_SECTION_RE.finditer(rationale or ""))
    out: dict[str, str] = {}
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(rationale)
        name = m.group(1).capitalize()
        name = "Comparison" if name.startswith("Compari") else name
        out.setdefault(name, rationale[m.end():end].strip())
    return out


def structure_problems(text: str, need_answer: bool = True) -> list[str]:
    """Names of what is broken in a reply: no_think, missing_<section>, no_answer; [] means intact."""
    problems = []
    rationale = parse_rationale(text)
    if rationale is None:
        problems.append("no_think")
        rationale = ""
    secs = split_sections(rationale)
    problems += [f"missing_{s.lower()}" for s in SECTIONS if not secs.get(s)]
    if need_answer and parse_verdict(text) is None:
        problems.append("no_answer")
    return problems


_CONCL_LABEL_RE = re.compile(r"(?:Response|Assistant|Output)\s*([AB])\b|\b([AB])\s+is\s+(?:better|correct|preferred)")


def conclusion_label(rationale: str) -> str | None:
    """The label the Conclusion section states ("Response A …", "B is better"), or None if none/both."""
    concl = split_sections(rationale or "").get("Conclusion", "")
    letters = {a or b for a, b in _CONCL_LABEL_RE.findall(concl)}
    return letters.pop() if len(letters) == 1 else None


# ---------------------------------------------------------------- proof <-> rationale

def proof_to_rationale(proof: str, spelling: str = "Comparison") -> str:
    """Reform a prover proof (`Feedback: …\\nComparison: …\\nConclusion: …`, one section per line block)
    into a <think> rationale (sections separated by blank lines). Raises GramrError when a section is missing."""
    secs = split_sections(proof)
    missing = [s for s in SECTIONS if not secs.get(s)]
    if missing:
        raise GramrError(f"proof lacks section(s) {', '.join(missing)}")
    return format_rationale(secs["Feedback"], secs["Comparison"], secs["Conclusion"], spelling)


def rationale_to_proof(rationale: str) -> str:
    """Inverse of `proof_to_rationale`: the prover's compact form, one section after another on its own line."""
    secs = split_sections(rationale)
    missing = [s for s in SECTIONS if not secs.get(s)]
    if missing:
        raise GramrError(f"rationale lacks section(s) {', '.join(missing)}")
    return "\n".join(f"{s}: {secs[s]}" for s in SECTIONS)
