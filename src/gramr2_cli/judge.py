"""Judging pairs with a generative reward model: sampling, verdict parsing, voting, both orders.

Shared by `self-label`, `rank`, `evaluate` and `serve`. One call renders every (pair, order) prompt and lets the
engine batch them; each of the `n` samples per prompt is parsed with `prompts.parse_verdict` (unparseable → null,
counted). Verdicts from the swapped order ("ba": B shown first) are mapped back to the original A/B.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from . import prompts
from .engines import Generation
from .errors import GramrError
from .records import swap_label

ORDERS = {"ab": ("ab",), "both": ("ab", "ba"), "ba": ("ba",)}


@dataclass
class Judgment:
    """The judgment of DESIGN §2 for one pair (all labels in the pair's original A/B orientation)."""
    label: str | None                    # majority verdict; None on a tie (unless tie-broken) or no parse
    votes: dict[str, int]                # {"A": n, "B": n, "null": n} over all samples and orders
    agreement: float                     # majority votes / all samples (0 when label is None)
    confidence: float | None             # mean P(label) at the answer position over samples that gave one
    p_a: float | None                    # mean P(A better) over samples and orders (the pair's score)
    parse_ok: int                        # samples with a parseable verdict
    order_consistent: bool | None        # both orders judged: did their majority verdicts agree?
    reason: str | None = None            # why label is None: tie | unparseable
    tie_broken: bool = False
    samples: list[dict] = field(default_factory=list)   # order, text, verdict (mapped), p_a

    def to_meta(self, keep_samples: bool = True) -> dict:
        d = asdict(self)
        if not keep_samples:
            d.pop("samples")
        return d


def _majority(verdicts: list[str | None]) -> tuple[str | None, str | None]:
    c = Counter(v for v in verdicts if v is not None)
    if not c:
        return None, "unparseable"
    (top, nt), *rest = c.most_common()
    if rest and rest[0][1] == nt:
        return None, "tie"
    return top, None


def combine(samples: list[dict], orders: tuple[str, ...], tie_break: bool = False) -> Judgment:
    """Votes, majority, agreement, confidence and order consistency from parsed samples (pure; tested on
    scripted samples). Ties are broken by mean P(A better) when `tie_break` (0.5 stays a tie)."""
    verdicts = [s["verdict"] for s in samples]
    votes = {"A": verdicts.count("A"), "B": verdicts.count("B"), "null": verdicts.count(None)}
    label, reason = _majority(verdicts)
    pas = [s["p_a"] for s in samples if s.get("p_a") is not None]
    p_a = sum(pas) / len(pas) if pas else None
    tie_broken = False
    if label is None and reason == "tie" and tie_break and p_a is not None and p_a != 0.5:
        label, reason, tie_broken = ("A" if p_a > 0.5 else "B"), None, True
    confidence = None
    if label is not None and pas:
        probs = [s["p_a"] if label == "A" else 1 - s["p_a"] for s in samples if s.get("p_a") is not None]
        confidence = sum(probs) / len(probs)
    order_consistent = None
    if len(orders) > 1:
        per_order = [_majority([s["verdict"] for s in samples if s["order"] == o])[0] for o in orders]
        order_consistent = None if None in per_order else len(set(per_order)) == 1
    n = len(samples)
    agreement = (votes[label] / n) if (label is not None and n) else 0.0
    return Judgment(label, votes, agreement, confidence, p_a, n - votes["null"], order_consistent, reason,
                    tie_broken, samples)


def judge_prompts(tokenizer, pairs: list[dict], orders: tuple[str, ...], version: str) -> list[str]:
    """Rendered judge prompts, pair-major then order: [(p0, ab), (p0, ba), (p1, ab), …]."""
    out = []
    for p in pairs:
        for o in orders:
            a, b = (p["response_a"], p["response_b"]) if o == "ab" else (p["response_b"], p["response_a"])
            out.append(prompts.render(tokenizer, prompts.judge_messages(p["prompt"], a, b, version)))
    return out


def _forced_verdict(ab: tuple[float, float] | None) -> Generation:
    """A verdict-only 'generation': the likelier answer token after the forced `<answer>\n`."""
    if ab is None:
        return Generation("", 0, 0.0, 0.0, "stop", None)
    letter = "A" if ab[0] >= ab[1] else "B"
    return Generation(prompts.judgment_text(None, letter), 1, 0.0, 0.0, "stop", ab)


def judge_pairs(engine, pairs: list[dict], *, version: str = "gramr2-v1", n: int = 1, orders: str = "ab",
                temperature: float = 0.0, max_new_tokens: int = 192, seed: int = 0, top_p: float = 1.0,
                tie_break: bool = False, verdict_only: bool = False) -> list[Judgment]:
    """Judge each pair `n` times per order. Raises GramrError for an unknown `orders` value.

    `verdict_only` judges without a rationale, for models trained with the `label` objective (the generative-RM
    baseline): the prompt is followed by the forced `<answer>\n` and the verdict is the likelier of A/B at that
    position (one deterministic sample per order; `n` and the sampling settings do not apply)."""
    if orders not in ORDERS:
        raise GramrError(f"unknown orders {orders!r}; choose from {', '.join(ORDERS)}")
    if n < 1:
        raise GramrError(f"the number of samples must be >= 1, got {n}")
    order_t = ORDERS[orders]
    texts = judge_prompts(engine.tokenizer, pairs, order_t, version)
    # A prompt that leaves no room for the reply in the model's context is not judged (hf would run past the
    # trained positions, vLLM would stop the run): its pair gets label None, reason "too_long_for_context".
    ctx = engine.context_length
    fits = [True] * len(texts)
    if ctx:
        lens = [len(x) for x in engine.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        fits = [n_tok + max_new_tokens <= ctx for n_tok in lens]
    run = [t for t, ok in zip(texts, fits) if ok]
    if verdict_only:
        got = iter([_forced_verdict(ab)] for ab in engine.answer_probs(run, [prompts.ANSWER_PREFIX + "A"] * len(run)))
    else:
        got = iter(engine.generate(run, n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
                                   top_p=top_p, answer_token_probs=True)) if run else iter(())
    gens = [next(got) if ok else None for ok in fits]
    out = []
    for i, _ in enumerate(pairs):
        if any(gens[i * len(order_t) + j] is None for j in range(len(order_t))):
            out.append(Judgment(None, {"A": 0, "B": 0, "null": 0}, 0.0, None, None, 0, None, "too_long_for_context"))
            continue
        samples = []
        for j, o in enumerate(order_t):
            for g in gens[i * len(order_t) + j]:
                v = prompts.parse_verdict(g.text)
                p_a = None
                if g.ab_probs is not None:
                    pa, pb = g.ab_probs
                    p_a = pa if o == "ab" else pb
                samples.append({"order": o, "text": g.text, "verdict": v if o == "ab" else swap_label(v),
                                "p_a": p_a})
        out.append(combine(samples, order_t, tie_break))
    return out
