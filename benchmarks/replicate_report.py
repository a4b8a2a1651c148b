"""Write docs/results.md (the decisive grid) or docs/results-full-grid.md (the full grid) and docs/results/*.png from
finished `benchmarks/replicate.py` runs (what was measured)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from gramr2_cli.core.hardware import cpu_line
from gramr2_cli.judging.probes import sign_test  # exact two-sided sign test (McNemar's exact test)
from gramr2_cli.reports.demo_summary import correct_by_id

PAPER = ("Paper reference (not a target): RM-Bench accuracy at 8B, GRAM-R² 85.7 vs the generative-RM baseline 79.2 "
         "(arXiv 2509.02492).")


def _models_in_order(report: Path) -> list[dict]:
    """Each model's overall metrics in an evaluate report.json, in report order, with its predictions directory."""
    rep = json.loads(report.read_text())
    return [dict(m["metrics"]["overall"], predictions=m.get("predictions")) for m in rep["models"].values()]


def mcnemar_power(n: int, discordant: float, delta: float, alpha: float = 0.05) -> float:
    """Power of the two-sided paired test (McNemar, normal approximation, Connor 1987) on `n` pairs whose share
    of discordant pairs is `discordant`, when the true accuracy difference is `delta`."""
    if n <= 0 or discordant <= 0:
        return 0.0                      # no pairs, or no pair where the two models differ: nothing to detect
    if abs(delta) >= discordant:
        return 1.0                      # every discordant pair goes one way
    z = statistics.NormalDist()
    za = z.inv_cdf(1 - alpha / 2)
    return z.cdf((abs(delta) * math.sqrt(n) - za * math.sqrt(discordant)) / math.sqrt(discordant - delta ** 2))


def detectable_difference(n: int, discordant: float, power: float = 0.8, alpha: float = 0.05) -> float:
    """The smallest accuracy difference the paired test detects with `power` (bisection on `mcnemar_power`);
    the discordant share itself when even that is out of reach."""
    lo, hi = 0.0, discordant
    if n <= 0 or discordant <= 0 or mcnemar_power(n, discordant, hi * (1 - 1e-9), alpha) < power:
        return discordant
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mcnemar_power(n, discordant, mid, alpha) < power else (lo, mid)
    return hi


def pairs_needed(discordant: float, delta: float, power: float = 0.8, alpha: float = 0.05) -> int | None:
    """Pairs the paired test needs to detect `delta` with `power` at this discordant share (None: delta 0)."""
    if delta == 0 or discordant <= 0:
        return None
    z = statistics.NormalDist()
    za, zb = z.inv_cdf(1 - alpha / 2), z.inv_cdf(power)
    return math.ceil((za * math.sqrt(discordant) + zb * math.sqrt(max(discordant - delta ** 2, 0.0))) ** 2
                     / delta ** 2)


def _fmt(vals: list[float]) -> str:
    if not vals:
        return "–"
    m = 100 * statistics.mean(vals)
    per = ", ".join(f"{100 * v:.1f}" for v in vals)
    return f"{m:.1f} ({per})"


def _cell(v, pct: bool = False) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{100 * v:.1f}" if pct else f"{v:.3f}"
    return str(v)


def write_report(out: Path, seeds: list[int], docs: Path, args: dict) -> None:
    names = ["backbone (no training)", "(a) label objective (G-baseline)", "(b) reasoning, prover rationales"]
    names += [f"(c) + self-training iteration {i}" for i in range(1, args["iterations"] + 1)]
    names += ["(d) (c) + gold-rationale fine-tuning"]
    controls = [f"control: (b) + {i} × iter_steps on the labeled set only" for i in range(1, args["iterations"] + 1)]
    main: dict[str, list[float]] = {n: [] for n in names}
    parse: dict[str, list[float]] = {n: [] for n in names}
    pred_a: dict[str, list[float]] = {n: [] for n in names}
    preds: dict[str, dict[int, str]] = {}            # row → seed → predictions directory
    iters: list[tuple[int, dict]] = []
    adapt: dict[str, list[float]] = {}
    cpu: dict[str, dict[int, float]] = {}            # step → seed → seconds (a seed may lack a step)
    used = []
    machines: set[str] = set()
    last = names[2 + args["iterations"]]
    decisive = args.get("grid") == "decisive"

    def add(n: str, o: dict, seed: int) -> None:
        """One model's metrics (and predictions) for row `n` of one seed; a missing report adds nothing."""
        if o.get("accuracy") is None:
            return
        for store, key in ((main, "accuracy"), (parse, "parse_rate"), (pred_a, "pred_A_rate")):
            if o.get(key) is not None:
                store.setdefault(n, []).append(o[key])
        if o.get("predictions"):
            preds.setdefault(n, {})[seed] = o["predictions"]

    for s in seeds:
        r = out / f"seed-{s}"
        if not (r / "eval/report.json").exists():
            continue
        used.append(s)
        rows = _models_in_order(r / "eval/report.json")
        if decisive:           # (b) and the last iteration; the control after as many steps
            eval_names, control_names = [names[2], last], controls[-1:]
        else:                  # (a) is judged verdict-only, in its own report
            eval_names, control_names = names, controls
            rows.insert(1, _models_in_order(r / "eval-a/report.json")[0]
                        if (r / "eval-a/report.json").exists() else {})
        for n, o in zip(eval_names, rows):
            add(n, o, s)
        if (r / "eval-control/report.json").exists():
            for n, o in zip(control_names, _models_in_order(r / "eval-control/report.json")):
                add(n, o, s)
        if (r / "eval-adapt/report.json").exists():
            rows = _models_in_order(r / "eval-adapt/report.json")
            labels = ["(c3), no adaptation"] + [f"{size} examples, {init}" for size in args["adapt_sizes"]
                                                for init in ("LoRA from (c3)", "full FT from backbone")]
            for lab, o in zip(labels, rows):
                adapt.setdefault(lab, []).append(o["accuracy"])
        if (r / "st/summary.json").exists():
            rows = json.loads((r / "st/summary.json").read_text()).get("metrics", {}).get("iterations", [])
            iters += [(s, row) for row in rows]
        if (r / "machine.json").exists():
            machines.add(cpu_line(json.loads((r / "machine.json").read_text())))
        if (r / "cpu_seconds.json").exists():
            for k, v in json.loads((r / "cpu_seconds.json").read_text()).items():
                cpu.setdefault(k, {})[s] = v
    lines = ["# Results: mini-replication on the synthetic task", "",
             "Embedded SmolLM2-135M-Instruct, CPU (2 cores, shared), the synthetic verifiable task of "
             "`gramr2 data synth` (easy families; held-out words/numbers in the test split). "
             f"Seeds: {used or 'none finished'}. Accuracy in % on held-out pairs (greedy, one order; a tie or an "
             "unparseable verdict counts as wrong): mean (per seed).", "",
             "CPU: " + (" | ".join(sorted(machines)) or "not recorded (runs before machine.json)"), "",
             (f"Regenerate: `make replicate-decisive` (seeds: `REPLICATE_SEEDS=\"{' '.join(map(str, seeds))}\"`); the "
              "report alone: `make replicate-decisive-report`." if decisive else
              f"Regenerate: `make replicate` (= `python benchmarks/replicate.py --seeds {' '.join(map(str, seeds))}`); "
              "the report alone: `python benchmarks/replicate.py --report-only`."), "",
             "Settings: " + ", ".join(f"{k}={v}" for k, v in args.items() if k not in ("out", "report_only")), "",
             "## Main table", "",
             "pred-A rate: how often the verdict is A among parsed verdicts (gold is balanced, 50%): far from 50 means "
             "the model judges by position.", "",
             "| model | accuracy | parse rate | pred-A rate |", "|---|---|---|---|"]
    for n in [n for n in names if main[n] or not decisive] + [c for c in controls if c in main]:
        lines.append(f"| {n} | {_fmt(main[n])} | {_fmt(parse[n])} | {_fmt(pred_a.get(n, []))} |")
    lines += ["", "### Paired comparisons (same test pairs, seeds pooled)", "",
              "Power (normal approximation of the paired test, α = 0.05): the smallest accuracy difference these "
              "pairs detect with 80% power at the observed share of discordant pairs, and the pairs needed to "
              "detect the observed difference with 80% power.", "",
              "| comparison | pairs | first right, second wrong | first wrong, second right | sign test p "
              "(two-sided) | detectable at 80% power | pairs needed for the observed difference |",
              "|---|---|---|---|---|---|---|"]
    for x, y in ((names[2], names[1]), (last, controls[-1]), (last, names[2]), (names[-1], last)):
        w = lo = n = 0
        for seed in sorted(set(preds.get(x, {})) & set(preds.get(y, {}))):
            cx, cy = correct_by_id(preds[x][seed]), correct_by_id(preds[y][seed])
            for i in cx.keys() & cy.keys():
                n += 1
                w += cx[i] and not cy[i]
                lo += cy[i] and not cx[i]
        if w or lo:
            psi, delta = (w + lo) / n, (w - lo) / n
            need = pairs_needed(psi, delta)
            lines.append(f"| {x} vs {y} | {n} | {w} | {lo} | {sign_test(w, lo):.3f} | "
                         f"{100 * detectable_difference(n, psi):.1f} pts | {need if need else '–'} |")
    lines += ["", PAPER, "", "## Self-training iterations (c)", "",
              "Per seed and iteration: unlabeled pairs the RM labeled, precision of its pseudo-labels against the "
              "synthetic gold, pairs the filter kept and their precision, size of the merged training set.", "",
              "| seed | iteration | labeled | label precision | kept | kept precision | train records | final loss |",
              "|---|---|---|---|---|---|---|---|"]
    for s, row in iters:
        lines.append("| " + " | ".join([str(s), str(row.get("iteration"))] + [
            _cell(row.get(k), pct=k.endswith("precision")) for k in (
                "labeled", "label_precision", "kept", "kept_precision", "train_records", "final_loss")]) + " |")
    if not decisive:
        lines += ["", "## Task adaptation (held-out families)", "", "| model | accuracy |", "|---|---|"]
        lines += [f"| {lab} | {_fmt(vals)} |" for lab, vals in adapt.items()]
    lines += ["", "## CPU seconds per step (user+sys of the step's process; wall in `:wall`)", "",
              "| step | " + " | ".join(f"seed {s}" for s in used) + " |", "|---|" + "---|" * len(used)]
    for k, v in sorted(cpu.items()):         # "–": that seed's run did not record the step (e.g. resumed elsewhere)
        lines.append(f"| {k} | " + " | ".join(f"{v[s]:.0f}" if s in v else "–" for s in used) + " |")
    # the decisive grid (issue 22) is docs/results.md; the full (a)-(e) grid its own page, each with its notes
    page = "results" if decisive else "results-full-grid"
    main_png = "decisive-main.png" if decisive else "main.png"
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "results").mkdir(exist_ok=True)
    _plot({k: v for k, v in main.items() if v}, docs / "results" / main_png, "Held-out accuracy by training recipe")
    if adapt:
        _plot(adapt, docs / "results" / "adapt.png", "Held-out-family accuracy after adaptation")
    lines += ["", f"![main](results/{main_png})", ""] + (["![adapt](results/adapt.png)", ""] if adapt else [])
    notes = docs / f"{page}_notes.md"
    if notes.exists():
        lines += ["## Discussion", "", notes.read_text()]
    (docs / f"{page}.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps({"seeds": used, "main": main, "parse": parse, "pred_A": pred_a,
                                                  "self_train": [dict(row, seed=s) for s, row in iters],
                                                  "adapt": adapt, "cpu": cpu, "args": args}, indent=2, default=str))


def _plot(data: dict[str, list[float]], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [k for k, v in data.items() if v]
    if not labels:
        return
    means = [100 * statistics.mean(data[k]) for k in labels]
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(labels) + 1.5))
    ax.barh(labels, means, color="#4a7ab5")
    for i, k in enumerate(labels):
        ax.scatter([100 * v for v in data[k]], [i] * len(data[k]), color="black", s=12, zorder=3)
    ax.axvline(50, color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(0, 100)
    ax.set_xlabel("accuracy % (bars: mean; dots: seeds; dashed: chance)")
    ax.set_title(title)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
