"""Long inputs: fit a judge prompt into the model's context by trimming the responses (ours; paper: not stated).

`generate.truncate` chooses what happens to a pair whose rendered judge prompt plus `generate.max_new_tokens`
does not fit the engine's context (`context_length`):

- `skip` (default): the pair is not judged; it gets label null and `reason: too_long_for_context`;
- `middle`: each response that must shrink keeps its beginning and its end, with `MARKER` between them;
- `end`: each response that must shrink keeps its beginning, followed by `MARKER`.

Only the responses are trimmed, never the question, the instructions or the template. The budget is
`context_length - max_new_tokens` tokens for the whole rendered prompt (every presentation order). Both
responses are cut to one common token cap (`water_level`): the longer response loses tokens first, and a short
one stays whole. Both orders are rendered from the same trimmed texts. A pair that does not fit even with both
responses cut to nothing (a question longer than the context) is skipped as under `skip`. The judgment says
how many of the pair's responses were trimmed (`responses_truncated`), and every judging stage sums it in its
summary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..engines import encode

MARKER = "[… truncated …]"   # visible to the judge, so a verdict is never read as about the whole response
ROUNDS = 6                   # re-measure-and-shrink rounds: token counts of re-joined text can differ by a few


@dataclass
class Fitted:
    """A pair's judge prompts after the truncation policy."""
    prompts: list[str] | None       # one rendered prompt per presentation order; None = does not fit
    lengths: list[int]              # token counts of `prompts` (of the untrimmed prompts when None)
    trimmed: int = 0                # how many of the pair's responses were trimmed (0, 1 or 2)


def water_level(lengths: list[int], total: int) -> int:
    """The largest cap c with sum(min(n, c) for n in lengths) <= total (total >= 0): responses longer than c are
    cut to c, the others stay whole."""
    if sum(lengths) <= total:
        return max(lengths, default=0)
    lo, hi = 0, max(lengths)
    while lo < hi:                 # largest c whose capped sum fits
        mid = (lo + hi + 1) // 2
        if sum(min(n, mid) for n in lengths) <= total:
            lo = mid
        else:
            hi = mid - 1
    return lo


def trim(tokenizer, text: str, keep: int, policy: str) -> str:
    """`text` cut to its first `keep` tokens (`end`) or its first ⌈keep/2⌉ and last ⌊keep/2⌋ tokens (`middle`),
    with `MARKER` where text was removed. A character split between two tokens at a cut is dropped."""
    ids = encode(tokenizer, text)
    if keep >= len(ids):
        return text
    head_n = keep if policy == "end" else (keep + 1) // 2
    head = tokenizer.decode(ids[:head_n]).rstrip("\ufffd") if head_n else ""
    if policy == "end":
        return f"{head}\n{MARKER}"
    tail_n = keep - head_n
    tail = tokenizer.decode(ids[len(ids) - tail_n:]).lstrip("\ufffd") if tail_n else ""
    return f"{head}\n{MARKER}\n{tail}"


def fit(tokenizer, pair: dict, budget: int, policy: str, render: Callable[[dict], list[str]]) -> Fitted:
    """The judge prompts of `pair` (`render(pair)`: one per order) within `budget` tokens under `policy`.

    Trims `response_a`/`response_b` to a common cap (`water_level`) sized from the overflow, re-renders and
    re-measures, and shrinks again by the remaining overflow (a few tokens more each round) until the longest
    prompt fits; `prompts` None when it cannot."""
    texts = render(pair)
    lengths = [len(encode(tokenizer, t)) for t in texts]
    if max(lengths) <= budget:
        return Fitted(texts, lengths)
    if policy == "skip":
        return Fitted(None, lengths)
    sizes = [len(encode(tokenizer, pair[k])) for k in ("response_a", "response_b")]
    marker = len(encode(tokenizer, f"\n{MARKER}\n"))
    allowed = sum(sizes) - (max(lengths) - budget)
    for extra in range(ROUNDS):
        cut = water_level(sizes, max(0, allowed - 2 * marker - 4 * extra))
        trimmed = dict(pair, **{k: trim(tokenizer, pair[k], cut, policy) for k in ("response_a", "response_b")})
        texts = render(trimmed)
        lengths = [len(encode(tokenizer, t)) for t in texts]
        if max(lengths) <= budget:
            return Fitted(texts, lengths, sum(cut < n for n in sizes))
        if cut == 0:
            break
        allowed -= max(lengths) - budget
    return Fitted(None, lengths)
