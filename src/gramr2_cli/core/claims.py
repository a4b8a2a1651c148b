"""Checks of a proof against the pair it proves (ours: the paper keeps the best of k by Eq. 5 and checks nothing).

`prove` drops a candidate with a problem before Eq. 5 (`prove.check_claims`), as it drops one missing a section:

- any proof: a Conclusion that names a winner must name the label the prover was asked to prove;
- a claim-first proof (synth's default rationale, `stages/synth.py: gold_rationale`) —
  `Feedback: Response A says X. Response B says Y.` … `Comparison: <check ending in Y>. Response B says Y.` —
  must quote each response truly (X occurs in response A, Y in response B), quote the label's claim at the end of
  the Comparison, and mention that claim in its check after the other one ("the smaller is 3.46" after "3.93 vs
  3.46"; "7 letters" after "6 t, 7 h"). A proof of another shape passes these three unchecked.

Why (docs/notes/learnability.md, 2026-12-04): the demo's 24-step prover wrote 119 of 384 proofs whose check
contradicts their own conclusion ("the smaller is 3.93. Response B says 3.46.") or that miscopy a response
("Response B says TEAPOT" for `TeAPOT`); the reward model trained on them learned the contradictions too.
"""

from __future__ import annotations

import re

from .prompts import conclusion_label, split_sections
from .records import swap_label

# A claim may itself hold periods ("3.9"): it runs up to the ". Response B says" that follows, or to the last ".".
_FEEDBACK_RE = re.compile(r"Response A says (.+?)\. Response B says (.+)\.", re.S)
_QUOTE_END_RE = re.compile(r"(.*?)\s*Response ([AB]) says (.+)\.", re.S)


def problems(rationale: str, response_a: str, response_b: str, label: str) -> list[str]:
    """What contradicts the pair or the label in `rationale` (a Feedback/Comparison/Conclusion text); [] = none.

    >>> problems("Feedback: Response A says 3.9. Response B says 3.46.\\n\\nComparison: 3.46 vs 3.90: the "
    ...          "smaller is 3.9. Response B says 3.46.\\n\\nConclusion: Response B is better.",
    ...          "3.9 is smaller.", "3.46 is smaller.", "B")
    ['check_ends_in_another_claim']
    """
    found = []
    named = conclusion_label(rationale)
    if named is not None and named != label:
        found.append("concludes_other_label")
    secs = split_sections(rationale)
    feedback = _FEEDBACK_RE.fullmatch(secs.get("Feedback", ""))
    if feedback is None:
        return found
    claims = {"A": feedback.group(1), "B": feedback.group(2)}
    for slot, response in (("A", response_a), ("B", response_b)):
        if claims[slot] not in response:
            found.append(f"misquotes_{slot}")
    end = _QUOTE_END_RE.fullmatch(secs.get("Comparison", ""))
    if end is None:
        return found
    check, slot, quoted = end.groups()
    if slot != label or quoted != claims[label]:
        found.append("quotes_another_claim")
        return found
    last = {s: _last_mention(check, c) for s, c in claims.items()}
    if max(last.values()) < 0:
        found.append("check_names_no_claim")
    elif last[label] < last[swap_label(label)]:
        found.append("check_ends_in_another_claim")
    return found


def _last_mention(text: str, claim: str) -> int:
    """Where the last whole mention of `claim` in `text` ends (-1: none); "5.5" is not mentioned by "5.50"."""
    ends = [m.end() for m in re.finditer(r"(?<![\w.])" + re.escape(claim) + r"(?!\w|\.\d)", text)]
    return ends[-1] if ends else -1
