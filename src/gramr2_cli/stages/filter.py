"""filter: keep the self-labelled (and proved) pairs that pass every configured rule; reject the rest with reasons.

Rules (each by name in `filter.rules`, each reported):
- `no_label`: the pseudo-label is null (a vote tie or no parseable verdict).
- `agreement`: the majority's share of the votes (`meta.judgment.agreement`) is below `min_agreement`.
- `confidence`: the mean answer-token probability of the label (`meta.judgment.confidence`) is below
  `min_confidence` (or was not measured).
- `order_consistency`: both orders were judged and their majority verdicts differ (or one order had none).
- `no_rationale`: the record has no rationale (run `prove` first, or self-label's `keep_rationale`).
- `too_long`: the rationale has more than `max_rationale_tokens` tokens (the tokenizer of `filter.tokenizer`;
  without one, whitespace-separated words, which undercounts BPE tokens by roughly a quarter for English).
- `label_not_in_conclusion`: the Conclusion section names no label or another one than `label`.
- `broken_structure`: a Feedback, Comparison or Conclusion section is missing or empty.
Judgment rules apply to records that have `meta.judgment` only; rationale rules to records with a rationale.
Then, with `balance_ab`, the majority label among kept pairs is downsampled to the minority's count (seeded by
a hash of (seed, id), so any run and any resume drop the same pairs) — as in the Self-Taught Evaluator.
Kept pairs go to the main part, rejected ones to `rejected/` with `meta.reasons`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..core import config, prompts, readers, shards
from ..judging import judge
from ..judging.metrics import precision

if TYPE_CHECKING:
    from ..recipe import Config

RULES = ("no_label", "agreement", "confidence", "order_consistency", "no_rationale", "too_long",
         "label_not_in_conclusion", "broken_structure")


@dataclass
class FilterConfig:
    rules: list[str] = field(default_factory=lambda: list(RULES))   # which rules run (all by default)
    min_agreement: float = 0.75     # share of votes for the majority label (paper: not stated)
    min_confidence: float = 0.6     # answer-token probability (paper: not stated)
    max_rationale_tokens: int = 256  # paper: not stated
    tokenizer: str = ""             # model spec whose tokenizer counts rationale tokens; "" = whitespace words
    balance_ab: bool = True         # downsample the majority label (Self-Taught Evaluator; paper: not stated)

    def check(self) -> list[str]:
        """Problems of this section (keys relative to `filter`)."""
        unknown = [r for r in self.rules if r not in RULES]
        bad_rules = ([f"rules: unknown rule(s) {', '.join(unknown)}; choose from {', '.join(RULES)}"]
                     if unknown else [])
        return [*bad_rules, *config.within("min_agreement", self.min_agreement, 0.0, 1.0),
                *config.within("min_confidence", self.min_confidence, 0.0, 1.0),
                *config.at_least("max_rationale_tokens", self.max_rationale_tokens, 1)]


def whitespace_tokens(text: str) -> int:
    """The token count used when no tokenizer is configured: whitespace-separated words."""
    return len(text.split())


def token_counter(spec: str) -> Callable[[str], int]:
    """A function counting tokens: the tokenizer of model `spec`, or whitespace words for ""."""
    if not spec:
        return whitespace_tokens
    from ..core import models
    tok = models.load_tokenizer(models.resolve(spec))
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def drop_reasons(rec: dict, cfg: FilterConfig, count_tokens: Callable[[str], int] = whitespace_tokens) -> list[str]:
    """Names of the enabled rules `rec` fails, in `RULES` order; [] means keep."""
    on = set(cfg.rules)
    reasons = []
    label = rec.get("label")
    j = (rec.get("meta") or {}).get("judgment")
    if "no_label" in on and label is None:
        reasons.append("no_label")
    if j is not None:
        if "agreement" in on and label is not None and (j.get("agreement") or 0.0) < cfg.min_agreement:
            reasons.append("agreement")
        conf = j.get("confidence")
        if "confidence" in on and label is not None and (conf is None or conf < cfg.min_confidence):
            reasons.append("confidence")
        # both orders judged: `order_labels` (one entry per order, kept even when samples are not, as in `rank
        # pairs` output), else the samples' orders; `orders` is what older hand-made records carry
        both = (len(j.get("order_labels") or []) > 1 or j.get("orders") == "both"
                or len({s.get("order") for s in j.get("samples") or []}) > 1)
        if "order_consistency" in on and both and j.get("order_consistent") is not True:
            reasons.append("order_consistency")
    rationale = rec.get("rationale")
    if rationale is None or not rationale.strip():
        if "no_rationale" in on:
            reasons.append("no_rationale")
        return reasons
    if "too_long" in on and count_tokens(rationale) > cfg.max_rationale_tokens:
        reasons.append("too_long")
    if "label_not_in_conclusion" in on and label is not None and prompts.conclusion_label(rationale) != label:
        reasons.append("label_not_in_conclusion")
    if "broken_structure" in on and any(p.startswith("missing_") for p in prompts.structure_problems(
            prompts.judgment_text(rationale, label or "A"), need_answer=False)):
        reasons.append("broken_structure")
    return reasons


def _rank(seed: int, rid: str) -> str:
    return hashlib.sha256(f"{seed}:balance:{rid}".encode()).hexdigest()


def balance(kept: list[dict], seed: int) -> set[str]:
    """Ids to drop so that kept A and B labels are equally many: the majority label's pairs with the highest
    hash of (seed, id) go. Depends only on the set of kept ids, never on order or run history."""
    by = {lab: [r["id"] for r in kept if r["label"] == lab] for lab in ("A", "B")}
    n = min(len(by["A"]), len(by["B"]))
    drop: set[str] = set()
    for ids in by.values():
        drop |= set(sorted(ids, key=lambda i: _rank(seed, i))[n:])
    return drop


def report(recs: list[dict], kept_ids: set[str], reasons: dict[str, list[str]]) -> dict:
    """Counts per rule, label balance before/after, kept fraction and, with gold labels, precision before/after."""
    kept = [r for r in recs if r["id"] in kept_ids]
    m: dict = {
        "kept_fraction": len(kept) / len(recs) if recs else 0.0,
        "rejected_by_rule": dict(Counter(x for rs in reasons.values() for x in rs)),
        "labels_before": dict(Counter(str(r["label"]) for r in recs)),
        "labels_after": dict(Counter(str(r["label"]) for r in kept)),
    }
    if any(judge.gold_label(r) for r in recs):
        before, after = precision(recs), precision(kept)
        m.update(precision_before=before["precision"], precision_after=after["precision"],
                 gold_before=before["n"], gold_after=after["n"])
    return m


def run(cfg: Config, inputs: list[Path], output: Path | str, *, overwrite: bool = False,
        shard_index: int | None = None, num_shards: int | None = None, progress: bool = True) -> shards.Summary:
    """Filter `inputs` into `output` (kept) and `output/rejected/` (with reasons); the report goes to the
    summary's metrics. Every record is judged on each run (no model, cheap), so balancing and the report cover
    the whole input even when resuming; only records not yet written are written.

    Raises GramrError for an unknown rule name or thresholds out of range."""
    fc = cfg.filter
    config.ensure(fc, "filter.")
    count_tokens = token_counter(fc.tokenizer)
    resolved = config.sections(cfg, "seed", "filter")
    skipped: Counter = Counter()
    with shards.open_output(output, stage="filter", config=resolved, inputs=inputs, overwrite=overwrite,
                            shard_index=shard_index, num_shards=num_shards, provenance={"seed": cfg.seed}) as out:
        recs = readers.read_all(inputs, shard_index=shard_index, num_shards=num_shards, skipped=skipped)
        reasons = {r["id"]: drop_reasons(r, fc, count_tokens) for r in recs}
        passed = [r for r in recs if not reasons[r["id"]]]
        if fc.balance_ab:
            for rid in balance(passed, cfg.seed):
                reasons[rid] = ["balance"]
        kept_ids = {r["id"] for r in recs if not reasons[r["id"]]}
        for k, v in skipped.items():
            out.skip(k, v)
        for r in recs:
            if r["id"] in out.done_ids:
                out.skip("already_done")
            elif reasons[r["id"]]:
                if out.to_stdout:  # stdout carries kept records only; the report still counts the rest
                    out.skip("rejected")
                else:
                    out.write(r, part="rejected", reasons=reasons[r["id"]])
            else:
                out.write(r)
        out.metrics.update(report(recs, kept_ids, reasons))
    return out.summary()
