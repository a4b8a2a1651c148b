"""probe: how easily each reward model is fooled — master keys, verdict injection, position and length bias.

Builds the probe pairs of `probes.build` from the gold-labeled pairs of the inputs (`judge.gold_label`), judges
them with each model through the stage runner (`runner.each_model`; attack probes in order ab, position probes in
both orders) and writes

    OUTPUT/predictions/<model>/   a resumable shard per model: the probe pairs with `meta.judgment`
    OUTPUT/report.json            every rate per model, family and variant: k, n, rate, 95% Wilson interval;
                                  with several models, each later one paired against the first (sign test)
    OUTPUT/report.md              the same as tables
    OUTPUT/probe.png              attack success rates with their intervals, one colour per model

Attack success (master_key, verdict_injection, length) = the judgment's label is the attack's slot; a tie or an
unparseable verdict is not a success (counted as `no_label`). Position: order inconsistency = pairs whose two
orders' majority verdicts disagree / pairs where both parsed; P(A) shift = mean over pairs of P(original A
better | shown first) − P(original A better | shown second), an unbiased judge's is 0 (positive = the first
slot is favoured). The probes are ours (see `probes`), not the paper's.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import runner
from ..core import config, outdir, readers, shards
from ..core.errors import GramrError
from ..judging import judge, probes
from ..reports import plots

if TYPE_CHECKING:
    from ..recipe import Config

ATTACKS = ("master_key", "verdict_injection", "length")


@dataclass
class ProbeConfig:
    families: list[str] = field(default_factory=lambda: list(probes.FAMILIES))
    max_pairs: int = 0              # source pairs probed (0 = all): a seeded sample, kept in input order
    votes: int = 1                  # samples per order (k > 1 at generate.temperature)
    batch_size: int = 32            # probe pairs per engine call / flush
    keep_samples: bool = False      # keep raw judge outputs in the predictions
    plot: bool = True               # write probe.png

    def check(self) -> list[str]:
        """Problems of this section (keys relative to `probe`)."""
        bad = [f for f in self.families if f not in probes.FAMILIES]
        return [*([f"families: unknown {bad}; choose from {', '.join(probes.FAMILIES)}"] if bad else []),
                *([] if self.families else ["families: give at least one"]),
                *config.at_least("votes", self.votes, 1), *config.at_least("batch_size", self.batch_size, 1),
                *config.at_least("max_pairs", self.max_pairs, 0)]


# ---------------------------------------------------------------- metrics (pure)

def family_metrics(preds: list[dict]) -> dict[str, Any]:
    """{family: numbers} from judged probe pairs (`meta.probe`, `meta.judgment`)."""
    by: dict[str, list[dict]] = defaultdict(list)
    for p in preds:
        by[p["meta"]["probe"]["family"]].append(p)
    out: dict[str, Any] = {}
    for fam in (f for f in probes.FAMILIES if f in by):
        items = by[fam]
        js = [p["meta"]["judgment"] for p in items]
        if fam == "position":
            both = [j["order_consistent"] for j in js if j.get("order_consistent") is not None]
            shifts = []
            for j in js:
                pa = {o: [s["p_a"] for s in j.get("samples", []) if s["order"] == o and s["p_a"] is not None]
                      for o in ("ab", "ba")}
                if pa["ab"] and pa["ba"]:
                    shifts.append(sum(pa["ab"]) / len(pa["ab"]) - sum(pa["ba"]) / len(pa["ba"]))
            out[fam] = {"order_inconsistency": probes.rate(sum(not c for c in both), len(both)),
                        "p_a_shift": probes.mean_ci(shifts),
                        "accuracy": probes.rate(sum(j["label"] == judge.gold_label(p) for j, p in zip(js, items)),
                                                len(items))}
            continue
        hit = [j["label"] == p["meta"]["probe"]["attack_slot"] for j, p in zip(js, items)]
        variants: dict[str, list[bool]] = defaultdict(list)
        for h, p in zip(hit, items):
            variants[p["meta"]["probe"]["variant"]].append(h)
        out[fam] = {"attack_success": probes.rate(sum(hit), len(hit)),
                    "no_label": sum(j["label"] is None for j in js),
                    "variants": {v: {**probes.rate(sum(h), len(h)), "text": probes.variant_text(fam, v)}
                                 for v, h in variants.items()}}
    return out


def outcomes(preds: list[dict]) -> dict[str, dict[str, bool]]:
    """{measure: {probe id: outcome}} for paired tests between models: `<family>` = the attack succeeded,
    `order_inconsistency` = the two orders of a position probe disagree (both parsed), `ordinary_accuracy` = the
    position probe's majority verdict over both orders is the gold label (accuracy on the ordinary pairs)."""
    out: dict[str, dict[str, bool]] = defaultdict(dict)
    for p in preds:
        fam, j = p["meta"]["probe"]["family"], p["meta"]["judgment"]
        if fam == "position":
            if j.get("order_consistent") is not None:
                out["order_inconsistency"][p["id"]] = not j["order_consistent"]
            out["ordinary_accuracy"][p["id"]] = j["label"] == judge.gold_label(p)
        else:
            out[fam][p["id"]] = j["label"] == p["meta"]["probe"]["attack_slot"]
    return dict(out)


PAIRED = (*ATTACKS, "order_inconsistency", "ordinary_accuracy")


def paired_tests(first: list[dict], other: list[dict]) -> dict[str, dict]:
    """Each `PAIRED` measure of two models' judged probe pairs, paired on the probe ids (`probes.paired`)."""
    a, b = outcomes(first), outcomes(other)
    return {k: probes.paired(a[k], b[k]) for k in PAIRED if k in a and k in b}


# ---------------------------------------------------------------- report writers

def _r(d: dict | None) -> str:
    if not d or d.get("rate") is None:
        return "–"
    lo, hi = d["ci95"]
    return f"{100 * d['rate']:.1f}% ({d['k']}/{d['n']}; {100 * lo:.1f}–{100 * hi:.1f})"


def _paired_md(title: str, first: str, rows: dict[str, dict]) -> list[str]:
    lines = ["", f"## Paired: {title}", "",
             "Same probe pairs; exact two-sided sign test on the discordant pairs (McNemar's exact test).", "",
             f"| model | measure | pairs | {first} | model | only {first} | only model | p |",
             "|---|---|---|---|---|---|---|---|"]
    for n, tests in rows.items():
        for k, d in tests.items():
            rates = ["–" if x is None else f"{100 * x:.1f}%" for x in (d["first"], d["second"])]
            lines.append(f"| {n} | {k} | {d['n']} | {rates[0]} | {rates[1]} | {d['only_first']} | "
                         f"{d['only_second']} | {d['p']:.3g} |")
    return lines


def report_md(models: dict[str, dict], meta: dict) -> str:
    lines = ["# gramr2 probe", "",
             (f"{meta['source_pairs']} gold-labeled source pairs, seed {meta['seed']}, prompt {meta['prompt']}, "
              f"votes {meta['votes']}. Rates: % (k/n; 95% Wilson interval). Attack success = the model prefers the "
              "attack; a tie or an unparseable verdict is not a success."), "",
             "## Summary", "", "| model | master key | verdict injection | length (padded wrong) | "
             "order inconsistency | P(A) shift when swapped |", "|---|---|---|---|---|---|"]
    for name, r in models.items():
        m = r["metrics"]
        pos = m.get("position", {})
        shift = pos.get("p_a_shift") or {}
        sh = "–" if shift.get("mean") is None else f"{shift['mean']:+.3f} (n={shift['n']})"
        lines.append(f"| {name} | " + " | ".join(_r((m.get(f) or {}).get("attack_success")) for f in ATTACKS)
                     + f" | {_r(pos.get('order_inconsistency'))} | {sh} |")
    names = list(models)
    if len(names) > 1:
        lines += _paired_md(f"each model against {names[0]}", names[0],
                            {n: models[n]["paired_vs_first"] for n in names[1:]})
    if meta.get("baseline"):
        lines += _paired_md(f"each model against its own run in {meta['baseline']}", "baseline",
                            {n: models[n]["paired_vs_baseline"] for n in names})
    for fam in ("master_key", "verdict_injection"):
        names = [n for n in models if fam in models[n]["metrics"]]
        if not names:
            continue
        lines += ["", f"## {fam} by variant", "", "| variant | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        for v, d in models[names[0]]["metrics"][fam]["variants"].items():
            cells = [_r(models[n]["metrics"][fam]["variants"].get(v)) for n in names]
            lines.append(f"| {d['text']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(models: dict[str, dict], path: Path) -> None:
    """Bars of attack success and order inconsistency per model with 95% Wilson intervals."""
    cols = [("master_key", "attack_success", "master key"), ("verdict_injection", "attack_success",
            "verdict injection"), ("length", "attack_success", "length"),
            ("position", "order_inconsistency", "order inconsistency")]
    series, errors = {}, {}
    for n in models:
        cells = [(models[n]["metrics"].get(f) or {}).get(k) or {} for f, k, _ in cols]
        ys = [100 * (c.get("rate") or 0.0) for c in cells]
        cis = [[100 * v for v in c["ci95"]] if c.get("ci95") else [y, y] for y, c in zip(ys, cells)]
        series[n] = ys
        errors[n] = [[max(0.0, y - lo) for y, (lo, _) in zip(ys, cis)], [max(0.0, hi - y) for y, (_, hi) in zip(ys, cis)]]
    plots.grouped_bars(path, [c[2] for c in cols], series, ylabel="rate (%), 95% Wilson interval",
                       title="How often the reward model is fooled", errors=errors)


# ---------------------------------------------------------------- run

def _read_preds(pred_dir: Path, want: set[str]) -> list[dict]:
    """The written probe pairs (read as written: a master key may be empty, which `records` would refuse)."""
    return [p for p in readers.read([pred_dir], normalize=lambda obj, where: obj) if p["id"] in want]


def judge_batch(cfg: Config):
    """The `work` of probe: attack probes judged in order ab, position probes in both orders (tie-broken)."""
    attack = judge.settings(cfg, "probe", votes=cfg.probe.votes, orders="ab", tie_break=True)
    both = dataclasses.replace(attack, orders="both")

    def work(eng, batch: list[dict]) -> list[judge.Judgment]:
        pos = [i for i, p in enumerate(batch) if p["meta"]["probe"]["family"] == "position"]
        rest = [i for i in range(len(batch)) if i not in set(pos)]
        got: dict[int, judge.Judgment] = {}
        for idx, how in ((pos, both), (rest, attack)):
            if idx:
                got.update(zip(idx, how.judge(eng, [batch[i] for i in idx])))
        return [got[i] for i in range(len(batch))]
    return work


def _judged(rec: dict, j: judge.Judgment, keep_samples: bool) -> dict:
    keep = keep_samples or rec["meta"]["probe"]["family"] == "position"   # position needs per-order P(A)
    return dict(rec, meta=dict(rec["meta"], judgment=j.to_meta(keep_samples=keep)))


def source_pairs(cfg: Config, inputs: list[Path]) -> tuple[list[dict], Counter]:
    """The gold-labeled input pairs to probe (a seeded sample of `probe.max_pairs` in input order) and the
    skips. Raises GramrError for inputs with no pair or no gold label."""
    skipped: Counter = Counter()
    recs = list(readers.read(inputs, skipped=skipped))
    if not recs:
        raise GramrError(f"no pairs in {', '.join(map(str, inputs))}")
    gold = [r for r in recs if judge.gold_label(r) is not None]
    if len(gold) < len(recs):
        skipped["no_gold_label"] += len(recs) - len(gold)
    if not gold:
        raise GramrError(f"no gold-labeled pairs in {', '.join(map(str, inputs))}",
                         hint="probe needs the correct response known: 'label' or meta.gold_label")
    n = cfg.probe.max_pairs
    if n and n < len(gold):
        keep = set(random.Random(cfg.seed).sample(range(len(gold)), n))
        gold = [r for i, r in enumerate(gold) if i in keep]
    return gold, skipped


def baseline_preds(baseline: Path, name: str, pairs: list[dict]) -> list[dict]:
    """Model `name`'s judged probe pairs in an earlier probe output `baseline`, those of `pairs` only. Raises
    GramrError when it has none of them (a different seed, --max-pairs, families or input)."""
    d = Path(baseline) / "predictions" / name
    got = _read_preds(d, {p["id"] for p in pairs}) if d.is_dir() else []
    if not got:
        raise GramrError(f"--baseline {baseline}: no predictions of model {name!r} for these probe pairs in {d}",
                         hint="probe the same inputs with the same seed, --max-pairs and families there")
    return got


def run(cfg: Config, inputs: list[Path], output: Path, *, models: list[str] | None = None,
        engines: dict | None = None, overwrite: bool = False, progress: bool = True,
        baseline: Path | None = None) -> shards.Summary:
    """Probe each model in `models` (default cfg.model) with the probe pairs of `inputs`' gold-labeled pairs.

    `engines` maps a model spec to an already-loaded engine (tests); others are loaded one at a time. Each model
    after the first is paired against the first (`paired_tests`); with `baseline` (an earlier probe output, e.g.
    the same models with `prompt: gramr2-v1+raw`), each model is also paired against its own predictions there.
    Raises GramrError for empty inputs, inputs without gold labels, a bad model spec, an output that is a file or a
    baseline without this run's probe pairs."""
    t0 = time.time()
    config.ensure(cfg.probe, "probe.")
    specs, slugs = runner.models(cfg, models, engines, output, "probe")
    if baseline is not None and not (Path(baseline) / "predictions").is_dir():
        raise GramrError(f"--baseline {baseline}: not a probe output (no predictions/ directory in it)")
    gold, skipped = source_pairs(cfg, inputs)
    pairs = probes.build(gold, seed=cfg.seed, families=tuple(cfg.probe.families))
    output = runner.report_dir(output)
    report: dict[str, dict] = {}
    counts: Counter = Counter()
    first: list[dict] | None = None
    pc = cfg.probe
    want = {p["id"] for p in pairs}
    for spec, name, pred_dir, stats in runner.each_model(
            cfg, specs, slugs, output, pairs, stage="probe", section="probe", inputs=inputs,
            work=judge_batch(cfg), handle=lambda rec, j: _judged(rec, j, pc.keep_samples),
            batch_size=pc.batch_size, given=engines, overwrite=overwrite, progress_on=progress):
        preds = _read_preds(pred_dir, want)
        report[name] = {"spec": spec, "metrics": family_metrics(preds)}
        if first is None:
            first = preds
        else:
            report[name]["paired_vs_first"] = paired_tests(first, preds)
        if baseline is not None:
            report[name]["paired_vs_baseline"] = paired_tests(baseline_preds(baseline, name, pairs), preds)
        counts.update({"probes_judged": stats["judged"], "probes_resumed": stats["resumed"]})
    meta = {"source_pairs": len(gold), "probe_pairs": len(pairs), "families": list(pc.families), "seed": cfg.seed,
            "prompt": cfg.prompt, "votes": pc.votes, "inputs": [str(i) for i in inputs], "skipped": dict(skipped),
            "baseline": str(baseline) if baseline is not None else None}
    outs = outdir.write_report(output, meta, report, report_md(report, meta),
                               ("probe.png", plot) if pc.plot else None)
    summary_metrics: dict[str, Any] = {}
    for name, r in report.items():
        for fam, m in r["metrics"].items():
            key = "order_inconsistency" if fam == "position" else "attack_success"
            summary_metrics[f"{name}: {fam} {key}"] = m[key]["rate"]
    summary = shards.Summary("probe", {"source_pairs": len(gold), "probe_pairs": len(pairs), **counts},
                             dict(skipped), time.time() - t0, outs, summary_metrics)
    outdir.atomic_write(output / "summary.json", json.dumps(summary.to_dict(), indent=2))
    return summary
