"""Judge and prover prompts, the output format, the verdict parser, and the proof <-> rationale reform.

Prompt versions (every judged record says which one produced it, in `meta.prompt_version`):
- `gramr2-v1`: the project default, a few lines so a pair stays near 150 tokens on CPU, with a one-line
  system turn instead of the chat template's long default one.
- `gramr2-short`: the same slots with a one-sentence system turn and a one-line question (ours, issue 22): ~35 fewer
  tokens per pair than `gramr2-v1` (~75 vs ~110 with SmolLM2's template on a synthetic pair), so a CPU trains on
  ~25% more examples per minute. For models fine-tuned on it (the demo); an untrained model is not told the format.
- `gram-rr`: the template the released GRAM-R² checkpoints were trained on, byte-exact (authors' spelling
  "Comparision" included), sent as one user turn through the model's chat template.
The reply format: `<think>\\nFeedback: …\\n\\nComparison: …\\n\\nConclusion: …\\n</think>\\n<answer>\\nA\\n</answer>`.

Untrusted text (the question and the responses) is put into every judge and prover prompt through `neutralise`:
the judge's own markup inside it (`<answer>`, `</answer>`, `<think>`, `</think>`, and the templates' slot markers
such as `[The End of Assistant A's Response]` or `[Response B]`) gets one visible backslash after its opening
bracket (`<\\answer>`), so no response can show the judge a verdict or rationale block of its own format or
forge the end of its slot (ours, issue 25; docs/security.md). `restore` undoes it exactly. A version with the
suffix `+raw` (`gram-rr+raw`, `gramr2-v1+raw`) is the same prompt with untrusted text inserted as it is: the
undefended rendering, for measuring the defense only.
"""

from __future__ import annotations

import re
from importlib import resources

from . import rendering
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
_SHORT_SYSTEM = "You are a careful judge."
_SHORT_USER = "[Question]\n{user_input}\n[Response A]\n{response_1}\n[Response B]\n{response_2}\nWhich is better, A or B?"
_PROVER_SYSTEM = "You are a careful judge. You explain why the given response is the better one."
_PROVER_USER = (
    "[Question]\n{user_input}\n"
    "[Response A]\n{response_1}\n"
    "[Response B]\n{response_2}\n"
    "Response {label} is better. Prove it: write Feedback: … Comparison: … Conclusion: …"
)


def _gram_rr_template() -> str:
    """The authors' string as their code uses it: `.strip()`ed (the shipped file ends with a newline)."""
    return resources.files("gramr2_cli").joinpath("templates/gram_rr_judge.txt").read_text(encoding="utf-8").strip()


_PLACEHOLDER_RE = re.compile(r"\{(user_input|response_1|response_2)\}")


def _fill(template: str, values: dict[str, str]) -> str:
    """The template with its placeholders filled in ONE pass over the template only: a `{response_1}` inside
    user text is never substituted."""
    return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], template)


RAW = "+raw"    # version suffix: untrusted text is not neutralised (measuring the defense only; ours)
BASE_VERSIONS = ("gramr2-v1", "gramr2-short", "gram-rr")
PROMPT_VERSIONS = (*BASE_VERSIONS, *(v + RAW for v in BASE_VERSIONS))

# The judge's own markup: its output tags (spaces allowed inside) and the slot markers of its templates (gram-rr,
# gramr2-v1 and the prover), each after its opening bracket and any backslashes already there.
_TAG = r"[ \t]*/?[ \t]*(?:answer|think)[ \t]*>"
_MARKER = r"(?:User Question|Question|Response [AB]|The (?:Start|End) of Assistant [AB]['\u2019]s Response)\]"


def _markup_re(escaped: bool) -> re.Pattern:
    bs = r"\\+" if escaped else r"\\*"
    return re.compile(rf"<{bs}{_TAG}|\[{bs}{_MARKER}", re.I)


_MARKUP_RE, _ESCAPED_RE = _markup_re(False), _markup_re(True)


def neutralise(text: str) -> str:
    """`text` with one backslash put right after the opening bracket of every piece of judge markup in it:
    `<answer>` → `<\\answer>`, `</think>` → `<\\/think>`, `[Response B]` → `[\\Response B]`; markup that already has
    k backslashes there gets k + 1, so `restore` inverts it exactly. The result holds no unescaped judge markup
    (`markup()` finds none, the verdict parser no block); everything else is unchanged, plain prose ("Response A is
    better") included."""
    return _MARKUP_RE.sub(lambda m: m.group(0)[0] + "\\" + m.group(0)[1:], text)


def markup(text: str) -> list[str]:
    """The pieces of judge markup in `text` that are not neutralised (none in the output of `neutralise`)."""
    return [m.group(0) for m in _MARKUP_RE.finditer(text or "") if m.group(0)[1] != "\\"]


def restore(text: str) -> str:
    """The inverse of `neutralise`: one backslash fewer after the opening bracket of every escaped markup."""
    return _ESCAPED_RE.sub(lambda m: m.group(0)[0] + m.group(0)[2:], text)


def base_version(version: str) -> tuple[str, bool]:
    """(template version, neutralise?) of a prompt version: `gram-rr+raw` → ("gram-rr", False)."""
    return (version.removesuffix(RAW), False) if version.endswith(RAW) else (version, True)


_OWN = {"gramr2-v1": (_V1_SYSTEM, _V1_USER), "gramr2-short": (_SHORT_SYSTEM, _SHORT_USER)}


def judge_messages(prompt: str, response_a: str, response_b: str, version: str = "gramr2-v1") -> list[dict]:
    """Chat messages asking the reward model to judge (prompt, A, B), the three texts `neutralise`d unless the
    version ends in `+raw`. Raises GramrError for an unknown version."""
    if version not in PROMPT_VERSIONS:
        raise GramrError(f"unknown prompt version {version!r}; choose from {', '.join(PROMPT_VERSIONS)}")
    version, safe = base_version(version)
    if safe:
        prompt, response_a, response_b = neutralise(prompt), neutralise(response_a), neutralise(response_b)
    if version in _OWN:
        system, template = _OWN[version]
        user = _fill(template, {"user_input": prompt, "response_1": response_a, "response_2": response_b})
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]
    text = _fill(_gram_rr_template(), {"user_input": prompt, "response_1": response_a, "response_2": response_b})
    return [{"role": "user", "content": text}]     # gram-rr


def prover_messages(prompt: str, response_a: str, response_b: str, label: str) -> list[dict]:
    """Prover input (s, l) of Eq. 4: the pair plus the given label, the three texts `neutralise`d; the target
    is a proof."""
    if label not in ("A", "B"):
        raise GramrError(f"the prover needs a label A or B, got {label!r}")
    prompt, response_a, response_b = neutralise(prompt), neutralise(response_a), neutralise(response_b)
    user = _PROVER_USER.format(user_input=prompt, response_1=response_a, response_2=response_b, label=label)
    return [{"role": "system", "content": _PROVER_SYSTEM}, {"role": "user", "content": user}]


def unconditional_messages() -> list[dict]:
    """The empty context of Eq. 5's denominator, log π(z): the prover's system turn and an empty user turn,
    so π(z) is the proof's probability with no pair and no label in view."""
    return [{"role": "system", "content": _PROVER_SYSTEM}, {"role": "user", "content": ""}]


def render(tokenizer, messages: list[dict]) -> rendering.Rendered:
    """Messages → the model's prompt text through its chat template, with the generation prompt added; only the
    template's own special tokens stay special (`rendering.render`, docs/security.md)."""
    return rendering.render(tokenizer, messages)


# ---------------------------------------------------------------- output format

def spelling(version: str) -> str:
    """How a prompt version's template spells the second section: `gram-rr` keeps the authors' "Comparision"."""
    return "Comparision" if base_version(version)[0] == "gram-rr" else "Comparison"


def respell(rationale: str | None, version: str) -> str | None:
    """`rationale` with its Comparison header spelled as `version`'s template spells it (`spelling`); training
    targets use it so a model learns the format its prompt shows. Other text is unchanged."""
    if not rationale:
        return rationale
    want = spelling(version)
    return _SECTION_RE.sub(lambda m: m.group(0).replace(m.group(1), want) if m.group(1).lower().startswith(
        "compari") else m.group(0), rationale)


def format_rationale(feedback: str, comparison: str, conclusion: str, spelling: str = "Comparison") -> str:
    """The text inside <think>…</think> from its three parts."""
    return f"Feedback: {feedback.strip()}\n\n{spelling}: {comparison.strip()}\n\nConclusion: {conclusion.strip()}"


def judgment_text(rationale: str | None, label: str) -> str:
    """The reward model's target/reply: `<think>\\n…\\n</think>\\n<answer>\\nX\\n</answer>` (no think when None)."""
    think = f"<think>\n{rationale.strip()}\n</think>\n" if rationale else ""
    return f"{think}{ANSWER_PREFIX}{label}\n</answer>"


_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_THINK_RE = re.compile(r"<think>(.*?)</think>", re.S | re.I)
_STRIP = " \t\r\n*_`'\"[](){}.:!,;-"


def _verdict_of(inner: str) -> str | None:
    """A or B when the block holds only the letter: whitespace, markdown/brackets/quotes and a leading
    "Response"/"Assistant"/"Answer"/"Output" are allowed, any other word is not ("Neither A" → None)."""
    s = inner.strip(_STRIP)
    s = re.sub(r"^(the\s+)?(response|assistant|answer|output)\s*", "", s, flags=re.I).strip(_STRIP)
    return s.upper() if s.upper() in ("A", "B") else None


def parse_verdict(text: str) -> str | None:
    """The verdict between `<answer>` and `</answer>`: "A", "B", or None when absent or ambiguous.

    Callers pass the model's own generation only, never the prompt (docs/security.md). Tolerates whitespace,
    case, "Response A", `[[A]]`, `**B**`. Several answer blocks that disagree, an unclosed block, "A or B",
    "Neither A", a sentence ("B is better"), or no letter → None (the caller counts it as unparseable).
    """
    verdicts = {_verdict_of(m) for m in _ANSWER_RE.findall(text or "")}
    if len(verdicts) != 1:
        return None
    return verdicts.pop()


def parse_rationale(text: str) -> str | None:
    """The text inside the first <think>…</think>, stripped; None when there is none."""
    m = _THINK_RE.search(text or "")
    return m.group(1).strip() if m else None


# A section header starts a line (after spaces or markdown `*`/`#`): an inline "in conclusion:" is not one.
_SECTION_RE = re.compile(r"^[ \t*#]*(Feedback|Compari(?:s|si)on|Conclusion)[ \t*]*:", re.I | re.M)


def split_sections(rationale: str) -> dict[str, str]:
    """{'Feedback': …, 'Comparison': …, 'Conclusion': …} for the sections present (either spelling); a header is
    a section name and a colon at the start of a line."""
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


_WHO = r"(?:(?:Response|Assistant|Output)\s*)?([AB])\b(?:'s\s+(?:response|answer))?"
_GOOD = r"(?:better|best|correct|preferred|superior|stronger|more\s+\w+|the\s+better(?:\s+one)?)"
_BAD = r"(?:worse|worst|wrong|incorrect|inferior|weaker|less\s+\w+)"
_WINNER_RES = (re.compile(_WHO + r"\s+is\s+" + _GOOD, re.I),                      # "Response A is better"
               re.compile(r"better\s+(?:response|answer|one)\s+is\s+" + _WHO, re.I))   # "the better response is B"
_LOSER_RE = re.compile(_WHO + r"\s+is\s+" + _BAD + r"\s+than", re.I)                  # "A is worse than B"
_MENTION_RE = re.compile(r"(?<![A-Za-z])([AB])(?![A-Za-z])")


def conclusion_label(rationale: str) -> str | None:
    """The label the Conclusion section states, or None if it states none or both.

    A statement that one response wins ("Response A is better than Response B", "the better response is B",
    "A is worse than B" → B) decides; several statements must agree. Otherwise a Conclusion that names exactly
    one response ("Response A.") gives it; one naming both without a winner ("Both Response A and Response B are
    equally good") gives None."""
    concl = split_sections(rationale or "").get("Conclusion", "")
    won = {m.group(1).upper() for r in _WINNER_RES for m in r.finditer(concl)}
    won |= {"B" if m.group(1).upper() == "A" else "A" for m in _LOSER_RE.finditer(concl)}
    if won:
        return won.pop() if len(won) == 1 else None
    named = set(_MENTION_RE.findall(concl))
    return named.pop() if len(named) == 1 else None


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
