"""data synth: a synthetic verifiable preference task with gold labels and gold rationales.

Each pair is a prompt with one right and one plausibly wrong response, drawn from a task family whose answer code
can check (`synth_families.FAMILIES`). The gold rationale shows that check step by step in the paper's
Feedback / Comparison / Conclusion form (the reasoning target of Eq. 2), and its Conclusion names the better
response. Presentation order is balanced exactly (A/B alternate within each split, then records are shuffled),
and the right and wrong responses have the same form, so neither position nor length gives the answer away.

Splits (each written as its own shard directory under the output):
- `labeled`, `unlabeled`, `test`: the main families (default: the easy ones). `unlabeled` keeps the gold label in
  `meta.gold_label` only (label and rationale null), for self-labeling. `test` uses held-out words and numbers.
- `adapt`, `adapt_test`: the held-out families (never in the main splits), for `adapt`; `adapt_test` also uses
  held-out words and numbers.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..core import config, outdir, records, shards
from ..core.errors import GramrError
from ..core.prompts import format_rationale
from ..core.shards import Summary
from .synth_families import DIFFICULTIES, FAMILIES, Problem

# split -> (word/number pool, family set, labeled?)
SPLITS = {"labeled": ("train", "main", True), "unlabeled": ("train", "main", False),
          "test": ("test", "main", True), "adapt": ("train", "adapt", True), "adapt_test": ("test", "adapt", True)}
MAX_TRIES = 2000  # draws per pair before a family counts as exhausted (problems are unique across splits)


@dataclass
class SplitSizes:
    """Pairs per split, as a multiple of `n` (rounded; 0 = don't write the split). The synthetic task is ours,
    not the paper's: every size here is `paper: not stated`."""
    labeled: float = 1.0       # gold label + gold rationale: pretraining / prover-training data
    unlabeled: float = 1.0     # label null, gold kept in meta.gold_label: self-labeling input
    test: float = 0.5          # main families, held-out words/numbers
    adapt: float = 0.25        # held-out families
    adapt_test: float = 0.25   # held-out families, held-out words/numbers

    def check(self) -> list[str]:
        """Problems of this section (keys relative to `synth.splits`)."""
        return [p for split in SPLITS for p in config.at_least(split, getattr(self, split), 0)]


@dataclass
class SynthConfig:
    n: int = 200                                                 # pairs in `labeled`; other splits scale with it
    families: list[str] = field(default_factory=list)            # [] = every easy family; also easy/hard/all groups
    adapt_families: list[str] = field(default_factory=list)      # [] = every heldout family
    splits: SplitSizes = field(default_factory=SplitSizes)
    rationale: str = "claim-first"                               # gold rationale style (ours): claim-first | per-response
    both_orders: bool = False                                    # labeled/adapt: each pair also swapped (ours)

    def check(self) -> list[str]:
        """Problems of this section (keys relative to `synth`; `splits` checks itself): n < 1, an unknown
        rationale style, unknown family names, and a family in both the main and the adapt splits (`all` includes the held-out families, so it
        needs the adapt splits off: -s synth.splits.adapt=0 -s synth.splits.adapt_test=0)."""
        found = [*config.at_least("n", self.n, 1), *config.choice("rationale", self.rationale, RATIONALE_STYLES)]
        chosen = {}
        for key, names, default in (("families", self.families, "easy"),
                                    ("adapt_families", self.adapt_families, "heldout")):
            try:
                chosen[key] = resolve_families(names, default, key)
            except GramrError as e:
                found.append(e.message)
        uses_adapt = any(round(self.n * getattr(self.splits, s)) > 0 for s in SPLITS if SPLITS[s][1] == "adapt")
        both = [f for f in chosen.get("adapt_families", []) if f in self.families]   # named one by one
        left = [f for f in chosen.get("families", []) if f not in chosen.get("adapt_families", [])]
        if uses_adapt and "families" in chosen and "adapt_families" in chosen and not both and not left:
            found.append("families: every family chosen is held out for the adapt splits (add main families: "
                         "easy, hard; or write no adapt splits: -s synth.splits.adapt=0 -s synth.splits.adapt_test=0)")
        if uses_adapt and both:
            found.append(f"families: family {both[0]!r} is in both synth.families and synth.adapt_families; the "
                         "adapt splits must hold families the main splits do not (choose other "
                         "synth.adapt_families, or write no adapt splits: -s synth.splits.adapt=0 "
                         "-s synth.splits.adapt_test=0)")
        return found


def resolve_families(names: list[str], default: str, key: str = "synth.families") -> list[str]:
    """Family names (in FAMILIES order) for a list of names and group names (easy, hard, heldout, all).
    [] means the `default` group. Raises GramrError for an unknown name."""
    wanted: set[str] = set()
    for name in names or [default]:
        if name == "all":
            wanted |= set(FAMILIES)
        elif name in DIFFICULTIES:
            wanted |= {f for f, fam in FAMILIES.items() if fam.difficulty == name}
        elif name in FAMILIES:
            wanted.add(name)
        else:
            raise GramrError(f"{key}: unknown family {name!r}; choose from {', '.join(FAMILIES)} "
                             f"(or a group: {', '.join(DIFFICULTIES)}, all)")
    return [f for f in FAMILIES if f in wanted]


def split_sizes(cfg: SynthConfig) -> dict[str, int]:
    """Pairs per split of a checked config (splits of size 0 left out)."""
    sizes = {}
    for split in SPLITS:
        ratio = getattr(cfg.splits, split)
        if round(cfg.n * ratio) > 0:
            sizes[split] = round(cfg.n * ratio)
    return sizes


RATIONALE_STYLES = ("claim-first", "per-response")


def gold_rationale(p: Problem, label: str, style: str = "claim-first") -> str:
    """The Feedback/Comparison/Conclusion rationale (the z of Eq. 2) for `p` shown with the right response at
    `label`. Both styles are ours (the paper's rationales come from its prover, not from code):

    - `claim-first` (default): Feedback copies each response's claim in A, B order; Comparison works the check
      until it produces the right claim's text and names the response that says it ("Response B says 1.78"), so
      the winner is a string match against a claim written a few tokens earlier; Conclusion names it.
    - `per-response`: Feedback is the check, Comparison judges each response "right"/"wrong" in A, B order.

    Measured on the embedded model (docs/notes/learnability.md): on the same pairs and budget, claim-first
    rationales taught decimal comparison to 97% where per-response ones left the model at 50%, one slot per family.
    """
    other = records.swap_label(label)
    if style == "per-response":
        notes = {label: p.note_right, other: p.note_wrong}
        comparison = f"Response A {notes['A']}; Response B {notes['B']}."
        return format_rationale(p.work, comparison, f"Response {label} is better.")
    claims = {label: p.claim_right, other: p.claim_wrong}
    feedback = f"Response A says {claims['A']}. Response B says {claims['B']}."
    comparison = f"{p.check_line} Response {label} {p.match_right or 'says ' + p.claim_right}."
    return format_rationale(feedback, comparison, f"Response {label} is better.")


def _draw(family: str, rng: random.Random, pool: str, seen: set[str], split: str) -> Problem:
    for _ in range(MAX_TRIES):
        p = FAMILIES[family].make(rng, pool)
        key = f"{p.prompt}\n{p.right}"  # a problem and its answer; another slip on it would be a near-duplicate
        if key not in seen:
            seen.add(key)
            return p
    raise GramrError(f"synth family {family!r} ran out of distinct problems for split {split!r}",
                     hint="lower synth.n (or the split's ratio) or add families")


def _split_records(split: str, families: list[str], size: int, seed: int, seen: set[str],
                   style: str = "claim-first", both_orders: bool = False) -> list[dict]:
    """`size` problems of `families` for `split`, A/B alternating, shuffled. With `both_orders` (training splits
    only: labeled, adapt) each problem is written twice, the second time with the responses swapped, the label
    flipped and its rationale rewritten for that order, so no position prior lowers the loss (ours)."""
    pool, _, labeled = SPLITS[split]
    twice = both_orders and split in ("labeled", "adapt")
    rng = random.Random(f"gramr2-synth:{seed}:{split}")
    per = [size // len(families) + (i < size % len(families)) for i in range(len(families))]
    out, slot = [], 0
    for family, k in zip(families, per):
        for _ in range(k):
            p = _draw(family, rng, pool, seen, split)
            first = "AB"[slot % 2]  # alternate over the family-ordered list: exact overall, within 1 per family
            slot += 1
            for label in (first, records.swap_label(first)) if twice else (first,):
                a, b = (p.right, p.wrong) if label == "A" else (p.wrong, p.right)
                meta = {"family": family, "category": family, "split": split, "gold_label": label,
                        "difficulty": FAMILIES[family].difficulty, "operands": p.operands}
                out.append(records.new_pair(p.prompt, a, b, label if labeled else None,
                                            gold_rationale(p, label, style) if labeled else None, source="synth",
                                            meta=meta))
    rng.shuffle(out)
    return out


def generate(cfg: SynthConfig, seed: int) -> dict[str, list[dict]]:
    """Split name -> records, deterministic in (cfg, seed). No (prompt, right answer) repeats across splits.
    A group in `families` (e.g. `all`) leaves out the families the adapt splits hold (ours: `--families all`
    works with the default splits). Raises ConfigError for a config that fails `SynthConfig.check` (unknown
    families, a family named in both `families` and `adapt_families`, no main family left), GramrError for an
    exhausted family."""
    config.ensure(cfg, "synth.")
    main = resolve_families(cfg.families, "easy")
    sizes = split_sizes(cfg)
    adapt: list[str] = []
    if "adapt" in sizes or "adapt_test" in sizes:
        adapt = resolve_families(cfg.adapt_families, "heldout", "synth.adapt_families")
        main = [f for f in main if f not in adapt]          # reached through a group (all, heldout): held out
    seen: set[str] = set()
    return {split: _split_records(split, main if SPLITS[split][1] == "main" else adapt, size, seed, seen,
                                  cfg.rationale, cfg.both_orders)
            for split, size in sizes.items()}


def split_config(cfg: SynthConfig, seed: int, split: str) -> dict:
    """The resolved config one split directory records (its hash decides resume vs. 'different config')."""
    return {"synth": dataclasses.asdict(cfg), "seed": seed, "split": split}


def _finished(d: Path, conf: dict) -> bool:
    if not shards.is_done(d):
        return False
    return outdir.read_manifest(d / "manifest.json").get("config_hash") == shards.config_hash(conf)


def describe(data: dict[str, list[dict]]) -> dict:
    """Metrics: pairs per split and family, gold A/B per split, each family's difficulty."""
    fams = {s: dict(Counter(r["meta"]["family"] for r in recs)) for s, recs in data.items()}
    labels = {s: {k: Counter(r["meta"]["gold_label"] for r in recs)[k] for k in "AB"} for s, recs in data.items()}
    used = {f for c in fams.values() for f in c}
    return {"families": fams, "labels": labels,
            "difficulty": {f: FAMILIES[f].difficulty for f in FAMILIES if f in used}}


def run(cfg: SynthConfig, output: Path | str, *, seed: int = 0, overwrite: bool = False) -> Summary:
    """Write one shard directory per split under `output` (or all splits as JSONL to stdout for `-`), plus
    `output/summary.json`. A split already finished with the same config is skipped, a partial one resumed.
    Raises GramrError for bad config or an output holding a different config (without `overwrite`)."""
    t0 = time.time()
    data = generate(cfg, seed)
    counts: Counter = Counter()
    skipped: Counter = Counter()
    outputs: list[str] = []
    if str(output) == "-":
        with shards.open_output("-", stage="synth", config=split_config(cfg, seed, "all")) as out:
            for recs in data.values():
                for r in recs:
                    out.write(r)
        counts["written"] = sum(len(r) for r in data.values())
    else:
        output = Path(output)
        if output.exists() and not output.is_dir():
            raise GramrError(f"{output}: output exists and is not a directory")
        for split, recs in data.items():
            d, conf = output / split, split_config(cfg, seed, split)
            outputs.append(str(d))
            if not overwrite and _finished(d, conf):
                skipped["already_done"] += len(recs)
                continue
            s = shards.write_records(d, recs, stage="synth", config=conf, overwrite=overwrite)
            counts["written"] += s.counts.get("out", 0)
            skipped.update(s.skipped)
    for split, recs in data.items():
        counts[split] = len(recs)
    summary = Summary("synth", {**{s: counts[s] for s in data}, "written": counts["written"]}, dict(skipped),
                      time.time() - t0, outputs, describe(data))
    if str(output) != "-":
        outdir.write_json(Path(output) / "summary.json", summary.to_dict())
    return summary

