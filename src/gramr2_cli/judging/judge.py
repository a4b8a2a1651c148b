"""Everything about judging pairs with a generative reward model, in one place.

- `Settings`, built once per run from the recipe (`settings()`): prompt version, votes, orders, sampling;
- `ORDERS`: the one set of presentation orders ("ab"; "both" also judges with the responses swapped);
- `judge_pairs()`: sampling, verdict parsing, voting. One call renders every (pair, order) prompt and lets the
  engine batch them; each of the `n` samples per prompt is parsed with `prompts.parse_verdict` (no verdict →
  null, counted as `truncated` when the sample hit `max_new_tokens`, else as unparseable). Verdicts from the
  swapped order ("ba": B shown first) are mapped back to the original A/B. A prompt longer than the context is
  skipped or has its responses trimmed (`truncation`, `generate.truncate`); truncated samples can be retried
  once with a larger budget (`generate.retry_truncated_tokens`);
- `gold_label()`: the one meaning of "the known-correct label of a record".
Pure judging: prompts → verdicts → judgments. Loading and closing engines, outputs, resume and the batch loop
are `runner`'s; `serve` and `rlhf` use the same settings.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from ..core import config, prompts
from ..core.records import LABELS, swap_label
from ..engines import Generation
from ..engines.settings import TRUNCATE_POLICIES
from . import truncation

ORDERS = {"ab": ("ab",), "both": ("ab", "ba")}   # the `orders` of self_label, rank, evaluate, serve: the one table


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
    reason: str | None = None            # why label is None: tie | unparseable | truncated | too_long_for_context
    tie_broken: bool = False
    samples: list[dict] = field(default_factory=list)   # order, text, verdict (mapped), p_a, truncated, retried
    order_labels: list = field(default_factory=list)    # majority verdict per order judged (mapped); None = tie/none
    order_reasons: list = field(default_factory=list)   # per order: None (a verdict), "tie" or "unparseable"
    truncated: int = 0                   # samples that hit max_new_tokens without a verdict (after any retry)
    retried: int = 0                     # samples generated again with generate.retry_truncated_tokens
    responses_truncated: int = 0         # responses trimmed to fit the context (generate.truncate)

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
    scripted samples). Ties are broken by mean P(A better) when `tie_break` (0.5 stays a tie). No verdict at
    all gives reason `truncated` when every sample hit max_new_tokens, else `unparseable`."""
    verdicts = [s["verdict"] for s in samples]
    votes = {"A": verdicts.count("A"), "B": verdicts.count("B"), "null": verdicts.count(None)}
    label, reason = _majority(verdicts)
    cut = sum(bool(s.get("truncated")) for s in samples)
    if reason == "unparseable" and samples and cut == len(samples):
        reason = "truncated"
    pas = [s["p_a"] for s in samples if s.get("p_a") is not None]
    p_a = sum(pas) / len(pas) if pas else None
    tie_broken = False
    if label is None and reason == "tie" and tie_break and p_a is not None and p_a != 0.5:
        label, reason, tie_broken = ("A" if p_a > 0.5 else "B"), None, True
    confidence = None
    if label is not None and pas:
        probs = [s["p_a"] if label == "A" else 1 - s["p_a"] for s in samples if s.get("p_a") is not None]
        confidence = sum(probs) / len(probs)
    per = [_majority([s["verdict"] for s in samples if s["order"] == o]) for o in orders]
    per_order = [lab for lab, _ in per]
    order_consistent = None
    if len(orders) > 1:
        order_consistent = None if None in per_order else len(set(per_order)) == 1
    n = len(samples)
    agreement = (votes[label] / n) if (label is not None and n) else 0.0
    return Judgment(label, votes, agreement, confidence, p_a, n - votes["null"], order_consistent, reason,
                    tie_broken, samples, per_order, [why for _, why in per], truncated=cut,
                    retried=sum(bool(s.get("retried")) for s in samples))


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


def _cut_off(g: Generation) -> bool:
    """A sample that stopped at max_new_tokens before giving a verdict (a verdict given before the cap counts)."""
    return g.finish_reason == "length" and prompts.parse_verdict(g.text) is None


def fit_prompts(engine, pairs: list[dict], orders: tuple[str, ...], version: str, max_new_tokens: int,
                policy: str = "skip") -> list[truncation.Fitted]:
    """Each pair's judge prompts (one per order) after the truncation policy (`truncation.fit`): a prompt must
    leave `max_new_tokens` of the engine's context for the reply (hf would run past the trained positions, vLLM
    would stop the run). With no known context length nothing is measured or trimmed."""
    tok, ctx = engine.tokenizer, engine.context_length
    render = lambda p: judge_prompts(tok, [p], orders, version)   # noqa: E731
    if not ctx:
        return [truncation.Fitted(render(p), []) for p in pairs]
    return [truncation.fit(tok, p, ctx - max_new_tokens, policy, render) for p in pairs]


def retry_cut_off(engine, texts: list[str], lengths: list[int], gens: list[list[Generation]], budget: int, *,
                  n: int, temperature: float, top_p: float, seed: int, max_new_tokens: int) -> set[tuple[int, int]]:
    """Generate again, once, with `budget` new tokens, every prompt that has a sample cut off without a verdict
    (`_cut_off`), and put the new sample j in place of each cut-off sample j of `gens`; returns the (prompt,
    sample) indices replaced. The same seed draws the same sample stream (engines' `row_seed`), so a retry
    continues the cut-off text rather than starting a new one. The budget is capped by the room the prompt
    leaves in the context (`lengths`, when the context is known); no retry when that is not above
    `max_new_tokens`. Ours (paper: not stated)."""
    ctx = engine.context_length
    by_budget: dict[int, list[int]] = defaultdict(list)
    for i, gs in enumerate(gens):
        room = min(budget, ctx - lengths[i]) if ctx and lengths else budget
        if room > max_new_tokens and any(_cut_off(g) for g in gs):
            by_budget[room].append(i)
    done = set()
    for room, idx in sorted(by_budget.items()):
        again = engine.generate([texts[i] for i in idx], n=n, temperature=temperature, max_new_tokens=room,
                                seed=seed, top_p=top_p, answer_token_probs=True)
        for i, new in zip(idx, again, strict=True):
            for j, g in enumerate(gens[i]):
                if _cut_off(g):
                    gens[i][j] = new[j]
                    done.add((i, j))
    return done


def judge_pairs(engine, pairs: list[dict], *, version: str = "gramr2-v1", n: int = 1, orders: str = "ab",
                temperature: float = 0.0, max_new_tokens: int = 192, seed: int = 0, top_p: float = 1.0,
                tie_break: bool = False, verdict_only: bool = False, truncate: str = "skip",
                retry_truncated_tokens: int = 0) -> list[Judgment]:
    """Judge each pair `n` times per order. Raises ConfigError for an unknown `orders` or `truncate` value or
    `n` < 1 (the tables and validators of the recipe sections' `check()`).

    A pair whose prompt does not fit the context gets label None, reason "too_long_for_context", unless
    `truncate` (`truncation.POLICIES`) trims its responses to fit (`Judgment.responses_truncated`). A sample
    cut off at `max_new_tokens` without a verdict is counted in `Judgment.truncated`; with
    `retry_truncated_tokens` > max_new_tokens it is generated once more with that budget (`retry_cut_off`).
    `verdict_only` judges without a rationale, for models trained with the `label` objective (the generative-RM
    baseline): the prompt is followed by the forced `<answer>\n` and the verdict is the likelier of A/B at that
    position (one deterministic sample per order; `n` and the sampling settings do not apply)."""
    config.require([*config.choice("orders", orders, ORDERS), *config.choice("truncate", truncate, TRUNCATE_POLICIES),
                    *config.at_least("n", n, 1)])
    order_t = ORDERS[orders]
    fitted = fit_prompts(engine, pairs, order_t, version, max_new_tokens, truncate)
    run = [t for f in fitted if f.prompts for t in f.prompts]
    lengths = [k for f in fitted if f.prompts for k in f.lengths]
    retried: set[tuple[int, int]] = set()
    if verdict_only:
        gens = [[_forced_verdict(ab)] for ab in engine.answer_probs(run, [prompts.ANSWER_PREFIX + "A"] * len(run))]
    else:
        gens = engine.generate(run, n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
                               top_p=top_p, answer_token_probs=True) if run else []
        if retry_truncated_tokens > max_new_tokens:
            retried = retry_cut_off(engine, run, lengths, gens, retry_truncated_tokens, n=n, temperature=temperature,
                                    top_p=top_p, seed=seed, max_new_tokens=max_new_tokens)
    out, k = [], 0
    for f in fitted:
        if f.prompts is None:
            out.append(Judgment(None, {"A": 0, "B": 0, "null": 0}, 0.0, None, None, 0, None, "too_long_for_context",
                                order_labels=[None] * len(order_t)))
            continue
        samples = []
        for o in order_t:
            for j, g in enumerate(gens[k]):
                v = prompts.parse_verdict(g.text)
                p_a = None
                if g.ab_probs is not None:
                    pa, pb = g.ab_probs
                    p_a = pa if o == "ab" else pb
                samples.append({"order": o, "text": g.text, "verdict": v if o == "ab" else swap_label(v),
                                "p_a": p_a, "truncated": _cut_off(g), "retried": (k, j) in retried})
            k += 1
        jd = combine(samples, order_t, tie_break)
        jd.responses_truncated = f.trimmed
        out.append(jd)
    return out


def tally(js: Iterable) -> dict[str, int]:
    """What a judging stage's summary counts over its judgments (`Judgment`s or their `to_meta()` dicts):
    samples cut off at max_new_tokens without a verdict (`truncated`), samples that finished without one
    (`unparseable`), samples retried with a larger budget, and responses trimmed to fit the context."""
    def get(j, key: str):
        return j.get(key, 0) if isinstance(j, dict) else getattr(j, key)
    js = list(js)
    cut = sum(get(j, "truncated") for j in js)
    return {"truncated": cut, "unparseable": sum(get(j, "votes")["null"] for j in js) - cut,
            "retried": sum(get(j, "retried") for j in js),
            "responses_truncated": sum(get(j, "responses_truncated") for j in js)}


def preference(j: Judgment) -> float:
    """The P(A better) a selection algorithm sees: the judgment's `p_a`, clamped to the voted side when majority
    voting overrules the answer-token probability; 0.5 (no preference) when nothing parsed and no probability."""
    if j.label is None:
        return 0.5 if j.p_a is None else j.p_a
    if j.p_a is not None and (j.p_a > 0.5) == (j.label == "A") and j.p_a != 0.5:
        return j.p_a
    return 1.0 if j.label == "A" else 0.0


# ---------------------------------------------------------------- settings, engine, gold label

@dataclass(frozen=True)
class Settings:
    """How a run judges (the keyword arguments of `judge_pairs`), built once by `settings()`."""
    prompt: str = "gramr2-v1"           # judge prompt version
    votes: int = 1                      # samples per order
    orders: str = "ab"
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 192
    seed: int = 0
    tie_break: bool = False
    verdict_only: bool = False          # generate.verdict_only: forced `<answer>`, no rationale
    truncate: str = "skip"              # generate.truncate: skip | middle | end (`truncation`)
    retry_truncated_tokens: int = 0     # generate.retry_truncated_tokens: 0 = no retry

    def judge(self, engine, pairs: list[dict]) -> list[Judgment]:
        """`judge_pairs` with these settings."""
        return judge_pairs(engine, pairs, version=self.prompt, n=self.votes, orders=self.orders,
                           temperature=self.temperature, max_new_tokens=self.max_new_tokens, seed=self.seed,
                           top_p=self.top_p, tie_break=self.tie_break, verdict_only=self.verdict_only,
                           truncate=self.truncate, retry_truncated_tokens=self.retry_truncated_tokens)


def settings(cfg, section: str, *, votes: int, orders: str, tie_break: bool, temperature: float | None = None
             ) -> Settings:
    """The judge settings of a stage whose recipe section `section` gives votes/orders/tie_break; the rest
    comes from `cfg.prompt`, `cfg.seed` and `cfg.generate`. `temperature` None = greedy for one vote and
    generate.temperature for voting@k (rank, evaluate, serve); self-label passes its own. The stage has checked
    its section (`config.ensure`); this checks `generate` the same way (raises ConfigError)."""
    config.ensure(cfg.generate, "generate.")
    g = cfg.generate
    if temperature is None:
        temperature = g.temperature if votes > 1 else 0.0
    return Settings(prompt=cfg.prompt, votes=votes, orders=orders, temperature=temperature, top_p=g.top_p,
                    max_new_tokens=g.max_new_tokens, seed=cfg.seed, tie_break=tie_break,
                    verdict_only=g.verdict_only, truncate=g.truncate, retry_truncated_tokens=g.retry_truncated_tokens)


def gold_label(rec: dict) -> str | None:
    """The known-correct label of a record, or None. One meaning everywhere (rank, evaluate, self-label's and
    filter's precision): `meta.gold_label` when the record has one (synth writes it; self-label moves an input
    label there), else the record's `label` unless that is a pseudo-label, i.e. unless `self-label` wrote the
    record (its provenance, `meta.provenance["self-label"]`, says so)."""
    meta = rec.get("meta") or {}
    g = meta.get("gold_label")
    if g in LABELS:
        return g
    if "self-label" in (meta.get("provenance") or {}):
        return None
    g = rec.get("label")
    return g if g in LABELS else None
