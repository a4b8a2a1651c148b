"""How fast the embedded model learns to judge: reasoning-RM accuracy on held-out pairs after fixed training budgets,
one lever at a time against today's recipe, on the same test pairs (issue 22, item 1; results in
docs/notes/learnability.md).

Each arm is a `gramr2 data synth` + `gramr2 pretrain` (checkpoints every `--every` steps, kept) + one
`gramr2 evaluate` per checkpoint, all through the CLI with recipe overrides. Arms that only differ in training
share their data; the test pairs are the same for every arm (the rationale style changes the gold rationale
text, never the pairs). Reported per checkpoint: tokens seen, accuracy with a 95% Wilson interval, pred-A rate,
per family, and the paired sign test of each arm against the first one at the same step.

    python benchmarks/learnability.py --out runs/learnability --arms per-response claim-first claim-first-top8
    python benchmarks/learnability.py --out runs/learnability --report-only   # tables from finished runs

Checkpoints are points on ONE cosine schedule (the lr at step 8 of a 24-step run is not that of an 8-step run):
a budget-matched run would need one run per budget, 3x the compute this 2-core CPU has for a study.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from gramr2_cli.core import hardware
from gramr2_cli.judging.probes import sign_test, wilson
from gramr2_cli.reports.demo_summary import correct_by_id

ROOT = Path(__file__).resolve().parents[1]
GRAMR2 = [sys.executable, "-m", "gramr2_cli.cli"]
RECIPE = ROOT / "recipes" / "demo.yaml"
FAMILIES = "decimal_compare,uppercase,last_letter"

# arm -> (synth overrides, train overrides). `per-response` is today's recipe (the gold rationale judges each
# response right/wrong); every other arm changes one thing against `claim-first`. A `prompt=` override is a
# train override that evaluation uses too (a model is judged with the prompt it was trained on).
ARMS: dict[str, tuple[list[str], list[str]]] = {
    "per-response": (["synth.rationale=per-response"], []),
    "claim-first": (["synth.rationale=claim-first"], []),
    "claim-first-both": (["synth.rationale=claim-first", "synth.both_orders=true"], []),
    "claim-first-both-short": (["synth.rationale=claim-first", "synth.both_orders=true"], ["prompt=gramr2-short"]),
    "claim-first-lr1e-4": (["synth.rationale=claim-first"], ["train.lr=1e-4"]),
    "claim-first-top8": (["synth.rationale=claim-first"], ["train.trainable_layers=8", "train.lr=5e-4"]),
    "claim-first-top4": (["synth.rationale=claim-first"], ["train.trainable_layers=4", "train.lr=1e-3"]),
    "claim-first-lora": (["synth.rationale=claim-first"], ["train.lora.enabled=true", "train.lr=1e-3",
                                                            "train.lora.r=32", "train.lora.alpha=64"]),
    "claim-first-warm0": (["synth.rationale=claim-first"], ["train.warmup_ratio=0"]),
    "claim-first-hard": (["synth.rationale=claim-first", "synth.families=[add_2digit,count_letter,word_length]"],
                         []),
    "per-response-hard": (["synth.rationale=per-response",
                           "synth.families=[add_2digit,count_letter,word_length]"], []),
}


def sh(args: list[str], log: Path) -> None:
    """Run one gramr2 command, its output appended to `log`; a failure stops the study with the log's tail."""
    with log.open("a") as f:
        f.write(f"$ {' '.join(args)}\n")
        f.flush()
        rc = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    if rc != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise SystemExit(f"command failed ({rc}): {' '.join(args)}\n{tail}")


def data_dir(out: Path, synth_set: list[str], args) -> Path:
    """The arm's synth output (shared by arms with the same synth overrides)."""
    key = "-".join(s.split("=", 1)[1].strip("[]").replace(",", "+") for s in synth_set) or "default"
    if args.families != FAMILIES and not any("families" in s for s in synth_set):
        key += "-" + args.families.replace(",", "+")
    d = out / "data" / f"{key}-n{args.n}"
    if not (d / "test" / "manifest.json").exists():
        sets = [f"synth.splits.{k}={v}" for k, v in (("unlabeled", 0), ("adapt", 0), ("adapt_test", 0),
                                                        ("test", args.test / args.n))]
        sets += [f"synth.families=[{args.families}]"] * (not any("families" in s for s in synth_set))
        sh([*GRAMR2, "data", "synth", "-o", str(d), "--n", str(args.n), "-c", str(RECIPE), "-s", f"seed={args.seed}",
            *[x for s in [*sets, *synth_set] for x in ("-s", s)]], out / "log.txt")
    return d


def run_arm(out: Path, arm: str, args) -> None:
    synth_set, train_set = ARMS[arm]
    data = data_dir(out, synth_set, args)
    model = out / (arm + args.tag)
    sets = [f"seed={args.seed}", f"train.save_steps={args.every}", "train.keep_checkpoints=true",
            "train.save_total_limit=100", *train_set]
    if not (model / "training_summary.json").exists():
        sh([*GRAMR2, "pretrain", str(data / "labeled"), "-o", str(model), "-c", str(RECIPE), "--resume",
            "--max-steps", str(args.steps), *[x for s in sets for x in ("-s", s)]], out / "log.txt")
    for ckpt in sorted((model / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])):
        rep = out / "eval" / (arm + args.tag) / ckpt.name
        if not (rep / "summary.json").exists():
            sh([*GRAMR2, "evaluate", str(data / "test"), "--model", str(ckpt), "-o", str(rep), "-c", str(RECIPE),
                "-s", f"seed={args.seed}", "-s", "generate.max_new_tokens=96",
                *[x for s in train_set if s.startswith("prompt=") for x in ("-s", s)]], out / "log.txt")


def _pred_dir(rep: Path) -> Path:
    return next(p for p in (rep / "predictions").iterdir() if p.is_dir())


def arm_rows(out: Path, arm: str) -> list[dict]:
    """One row per evaluated checkpoint: step, tokens, accuracy + interval, pred-A, per family."""
    rows = []
    for rep in sorted((out / "eval" / arm).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])):
        if not (rep / "summary.json").exists():
            continue
        step = int(rep.name.split("-")[1])
        state = json.loads((out / arm / "checkpoints" / rep.name / "trainer_state.json").read_text())
        recs = [json.loads(line) for part in sorted(_pred_dir(rep).glob("part-*.jsonl"))
                for line in part.read_text().splitlines()]
        ok = correct_by_id(_pred_dir(rep))
        fams: dict[str, list[int]] = {}
        pred_a = 0
        for r in recs:
            f = fams.setdefault(r["meta"]["family"], [0, 0])
            f[0] += ok[r["id"]]
            f[1] += 1
            pred_a += r["meta"].get("judgment", {}).get("label") == "A"
        k, n = sum(ok.values()), len(ok)
        rows.append({"arm": arm, "step": step, "tokens": state.get("num_input_tokens_seen"), "k": k, "n": n,
                     "accuracy": k / n, "ci95": wilson(k, n), "pred_A": pred_a / n, "families": fams,
                     "correct": ok})
    return rows


def report(out: Path, arms: list[str], base_arm: str) -> str:
    rows = {a: arm_rows(out, a) for a in arms}
    base = {r["step"]: r for r in (rows[base_arm] if base_arm in rows else arm_rows(out, base_arm))}
    lines = [f"CPU: {hardware.cpu_line()}", "",
             "| arm | step | tokens | accuracy (95% CI) | pred-A | per family | vs " + base_arm + " (W/L, p) |",
             "|---|---|---|---|---|---|---|"]
    for a in arms:
        for r in rows[a]:
            lo, hi = r["ci95"]
            fam = ", ".join(f"{f} {c}/{t}" for f, (c, t) in sorted(r["families"].items()))
            cmp_ = "–"
            b = base.get(r["step"])
            if b is not None and a != base_arm:
                w = sum(r["correct"][i] and not b["correct"][i] for i in r["correct"])
                l_ = sum(b["correct"][i] and not r["correct"][i] for i in r["correct"])
                cmp_ = f"{w}/{l_}, p = {sign_test(w, l_):.3g}"
            lines.append(f"| {a} | {r['step']} | {r['tokens']} | {100 * r['accuracy']:.1f}% ({100 * lo:.0f}–"
                         f"{100 * hi:.0f}) | {100 * r['pred_A']:.0f}% | {fam} | {cmp_} |")
    timing = []
    for a in arms:
        s = out / a / "training_summary.json"
        if s.exists():
            m = json.loads(s.read_text())
            m = m.get("metrics", m)
            timing.append(f"- {a}: {m.get('tokens_seen')} tokens in {m.get('minutes')} min "
                          f"({m.get('tokens_per_second')} tok/s, {m.get('precision')})")
    text = "\n".join([*lines, "", "Training time (this run's machine; see the notes for load):", *timing]) + "\n"
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps({a: [{k: v for k, v in r.items() if k != "correct"} for r in rs]
                                                 for a, rs in rows.items()}, indent=1))
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "learnability")
    ap.add_argument("--arms", nargs="+", default=["per-response", "claim-first"], choices=list(ARMS))
    ap.add_argument("--n", type=int, default=320, help="labeled pairs (training examples)")
    ap.add_argument("--test", type=int, default=96, help="held-out test pairs")
    ap.add_argument("--families", default=FAMILIES)
    ap.add_argument("--steps", type=int, default=24, help="training steps of 8 examples")
    ap.add_argument("--every", type=int, default=8, help="evaluate a checkpoint every this many steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="", help="suffix of this run's arm directories (the same arm, other sizes)")
    ap.add_argument("--base", default="per-response", help="the arm the others are tested against (paired)")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.report_only:
        for arm in args.arms:
            t0 = time.time()
            run_arm(args.out, arm, args)
            print(f"{arm}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
            print(report(args.out, [a + args.tag for a in args.arms], args.base), flush=True)
    print(report(args.out, [a + args.tag for a in args.arms], args.base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
