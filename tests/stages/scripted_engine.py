"""A scripted judge engine for stage tests (rank, evaluate, serve): no model, exact verdicts.

It reads the rendered `gramr2-v1` judge prompt back into (question, shown A, shown B) and asks a Python
function for the verdict, so tests can script a total order, a position bias or unparseable replies.
"""

from __future__ import annotations

import re
import threading

from gramr2_cli.engines import Generation

_PROMPT_RE = re.compile(r"\[Question\]\n(.*)\n\[Response A\]\n(.*)\n\[Response B\]\n(.*)\nReply as", re.DOTALL)


class PlainTokenizer:
    """No chat template: `prompts.render` falls back to `role: content` lines."""
    chat_template = None


def reply(verdict: str) -> str:
    return f"<think>\nFeedback: f\n\nComparison: c\n\nConclusion: {verdict}\n</think>\n<answer>\n{verdict}\n</answer>"


class ScriptedEngine:
    """`decide(question, shown_a, shown_b, sample) -> (verdict "A"/"B"/None, P(shown A) or None)`.
    A None verdict produces an unparseable reply. Records every call's prompts in `calls` (and the verdict-only
    `answer_probs` calls also in `forced_calls`)."""

    name = "scripted"
    context_length = None

    def __init__(self, decide):
        self.decide = decide
        self.tokenizer = PlainTokenizer()
        self.calls: list[list[str]] = []
        self.forced_calls: list[list[str]] = []
        self.samples = 0
        self.closed = False
        self.lock = threading.Lock()

    @staticmethod
    def parse(prompt: str) -> tuple[str, str, str]:
        m = _PROMPT_RE.search(prompt)
        assert m, f"not a gramr2-v1 judge prompt: {prompt[:200]!r}"
        return m.group(1), m.group(2), m.group(3)

    def generate(self, prompts, *, n=1, temperature=0.0, max_new_tokens=128, seed=0, top_p=1.0,
                 answer_token_probs=False, **_):
        with self.lock:
            self.calls.append(list(prompts))
        out = []
        for p in prompts:
            q, a, b = self.parse(p)
            gens = []
            for k in range(n):
                v, pa = self.decide(q, a, b, k)
                text = reply(v) if v in ("A", "B") else "I cannot decide."
                ab = (pa, 1.0 - pa) if (pa is not None and answer_token_probs) else None
                gens.append(Generation(text=text, num_tokens=8, sum_logprob=-1.0, mean_logprob=-0.125, ab_probs=ab))
            out.append(gens)
            self.samples += n
        return out

    def score(self, prompts, continuations):
        raise NotImplementedError

    def answer_probs(self, prompts, continuations):
        """P(shown A), P(shown B) from `decide` (sample 0) for verdict-only judging."""
        out = []
        for p in prompts:
            v, pa = self.decide(*self.parse(p), 0)
            out.append(None if v not in ("A", "B") else ((pa, 1.0 - pa) if pa is not None else
                                                          ((1.0, 0.0) if v == "A" else (0.0, 1.0))))
        with self.lock:
            self.calls.append(list(prompts))
            self.forced_calls.append(list(prompts))
        self.samples += len(prompts)
        return out

    def close(self):
        self.closed = True


def by_quality(quality: dict[str, float]):
    """A judge that prefers the response with the higher scripted quality (P = 0.9 for the winner)."""
    def decide(q, a, b, k):
        return ("A", 0.9) if quality[a] >= quality[b] else ("B", 0.1)
    return decide
