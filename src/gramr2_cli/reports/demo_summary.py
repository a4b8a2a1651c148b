"""The final table of `make demo`: what each step took, what the filter did to pseudo-label precision, the
reward model before vs after one self-training iteration, and the best-of-4 picks. Reads only the
`summary.json` / `training_summary.json` / `report.json` files the stages wrote.

    python -m gramr2_cli.reports.demo_summary runs/demo
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..core import readers
from ..judging.probes import paired, wilson

STEPS = [("data synth", "data/test/summary.json"), ("prover-train", "prover/training_summary.json"),
         ("prove (labeled)", "proved/summary.json"), ("pretrain (initial RM)", "rm0/training_summary.json"),
         ("self-label", "iter-1/labeled/summary.json"), ("prove (pseudo-labeled)", "iter-1/proved/summary.json"),
         ("filter", "iter-1/kept/summary.json"), ("data merge", "iter-1/train/summary.json"),
         ("pretrain (iteration 1)", "rm1/training_summary.json"), ("evaluate", "report/summary.json"),
         ("rank list", "best-of-4/summary.json")]


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _records(d: Path) -> list[dict]:
    """The records of shard directory `d` as written (`readers.read_raw`), [] when the step never ran."""
    return [obj for src in readers.source_files([d]) for _, obj in readers.read_raw(src)] if d.is_dir() else []


def correct_by_id(pred_dir: str | Path) -> dict[str, bool]:
    """id → the model's verdict equals the gold label (a missing verdict is wrong), from evaluate's shards."""
    out = {}
    for r in _records(Path(pred_dir)):
        verdict = (r.get("meta", {}).get("judgment") or {}).get("label")
        gold = r.get("label") or r.get("meta", {}).get("gold_label")
        out[r["id"]] = verdict is not None and verdict == gold
    return out


def outcome(root: Path) -> dict:
    """What the demo shows, from the files its stages wrote: per model (report order: rm0, rm1) accuracy with a
    95% Wilson interval and pred-A rate on the held-out pairs; the paired sign test rm1 vs rm0; pseudo-label
    precision before/after the filter; best-of-4 accuracy vs a random pick (1 / list length); and a verdict
    sentence. Missing parts are None."""
    rep = _load(root / "report/report.json")
    models = {}
    for name, m in (rep.get("models") or {}).items():
        pred = Path(m.get("predictions") or "")
        if not pred.is_dir():                   # the run directory moved since: its own predictions/<model>
            pred = root / "report/predictions" / name
        ok = correct_by_id(pred)
        k, n = sum(ok.values()), len(ok)
        o = m.get("metrics", {}).get("overall", {})
        models[name] = {"n": n, "correct": k, "accuracy": k / n if n else None,
                        "ci95": list(wilson(k, n) or ()) or None, "pred_A_rate": o.get("pred_A_rate"), "_ok": ok}
    names = list(models)
    test = paired(models[names[0]]["_ok"], models[names[1]]["_ok"]) if len(names) >= 2 else None
    for m in models.values():
        del m["_ok"]
    f = _load(root / "iter-1/kept/summary.json").get("metrics", {})
    lists = _records(root / "best-of-4")
    right = [r["meta"]["rank"]["winner"] == r["meta"]["best"] for r in lists if r["meta"].get("best") is not None]
    chance = (sum(1 / len(r["candidates"]) for r in lists if r["meta"].get("best") is not None) / len(right)
              if right else None)
    return {"models": models, "rm1_vs_rm0": test,
            "pseudo_labels": {"precision_before": f.get("precision_before"),
                              "precision_after": f.get("precision_after"), "kept_fraction": f.get("kept_fraction")},
            "best_of_4": {"lists": len(right), "correct": sum(right), "accuracy": sum(right) / len(right)
                          if right else None, "ci95": list(wilson(sum(right), len(right)) or ()) or None,
                          "random_pick": chance},
            "verdict": verdict(test, names)}


# rm1 also trained longer than rm0: what its gain is made of takes the compute-matched control of docs/results.md
CONTROL_NOTE = ("rm1 also trained more steps than rm0; docs/results.md compares self-training with as many steps "
                "on the labeled proofs alone (the compute-matched control).")


def verdict(test: dict | None, names: list[str]) -> str:
    """One plain sentence: did self-training (the second model vs the first) help on these pairs?"""
    if not test or test["n"] == 0:
        return "Not measured: the report has fewer than two models."
    a, b = names[0], names[1]
    diff = 100 * (test["second"] - test["first"])
    if test["p"] < 0.05:
        how = "helped" if diff > 0 else "hurt"
        return (f"Self-training {how} here: {b} {100 * test['second']:.1f}% vs {a} {100 * test['first']:.1f}% on "
                f"the same {test['n']} pairs ({diff:+.1f} points, {test['only_second']} pairs only {b} got right, "
                f"{test['only_first']} only {a}; sign test p = {test['p']:.3g}).")
    return (f"No measurable effect of self-training here: {b} {100 * test['second']:.1f}% vs {a} "
            f"{100 * test['first']:.1f}% on the same {test['n']} pairs ({diff:+.1f} points; {test['only_second']} "
            f"vs {test['only_first']} discordant pairs, sign test p = {test['p']:.3g}).")


def _ci(m: dict) -> str:
    return "–" if not m.get("ci95") else f"{100 * m['ci95'][0]:.0f}–{100 * m['ci95'][1]:.0f}%"


def main(run: str) -> int:
    root = Path(run)
    con = Console(stderr=True)
    t = Table(title="gramr2 demo: steps", title_justify="left")
    for c in ("step", "seconds", "what"):
        t.add_column(c)
    total = 0.0
    for name, rel in STEPS:
        s = _load(root / rel)
        secs = s.get("seconds", 60 * s.get("minutes", 0.0))
        total += secs or 0.0
        what = ""
        if "final_loss" in s:
            what = f"{s.get('steps')} steps, loss {s.get('first_loss'):.3f} → {s.get('final_loss'):.3f}"
        elif s.get("counts"):
            what = ", ".join(f"{k} {v}" for k, v in list(s["counts"].items())[:4])
        t.add_row(name, f"{secs:.0f}" if s else "missing", what)
    t.add_row("total", f"{total:.0f}", "")
    con.print(t)

    f = _load(root / "iter-1/kept/summary.json").get("metrics", {})
    lab = _load(root / "iter-1/labeled/summary.json").get("metrics", {})
    ft = Table(title="self-training iteration 1: pseudo-labels", title_justify="left")
    ft.add_column("what")
    ft.add_column("value")
    ft.add_row("pseudo-label precision before filter", _pct(f.get("precision_before")))
    ft.add_row("pseudo-label precision after filter", _pct(f.get("precision_after")))
    ft.add_row("kept fraction", _pct(f.get("kept_fraction")))
    ft.add_row("rejected by rule", str(f.get("rejected_by_rule", {})))
    if lab:
        ft.add_row("self-label metrics", ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                                 for k, v in lab.items() if not isinstance(v, (dict, list))))
    con.print(ft)

    res = outcome(root)
    et = Table(title="held-out synthetic test: before vs after self-training", title_justify="left")
    for c in ("model", "pairs", "accuracy", "95% CI", "pred A rate"):
        et.add_column(c)
    for name, m in res["models"].items():
        et.add_row(name, str(m["n"]), _pct(m["accuracy"]), _ci(m), _pct(m["pred_A_rate"]))
    con.print(et)
    t = res["rm1_vs_rm0"]
    if t:
        con.print(f"paired: {t['only_second']} pairs right only after, {t['only_first']} only before; "
                  f"sign test p = {t['p']:.3g}")

    b = res["best_of_4"]
    bt = Table(title="best-of-4 (knockout, both orders) on held-out problems", title_justify="left")
    for c in ("prompt", "picked", "right?", "judge calls"):
        bt.add_column(c)
    for r in _records(root / "best-of-4"):
        rk = r["meta"]["rank"]
        best = r["meta"].get("best")
        bt.add_row(r["prompt"], r["candidates"][rk["winner"]],
                   "–" if best is None else ("yes" if rk["winner"] == best else "no"), str(rk["judge_calls"]))
    con.print(bt)
    if b["lists"]:
        con.print(f"best-of-4: {b['correct']}/{b['lists']} right ({_pct(b['accuracy'])}, 95% CI {_ci(b)}) vs a "
                  f"random pick {_pct(b['random_pick'])}")
    con.print(f"[bold]{res['verdict']}[/bold]")
    if t:                                       # only when rm1 was compared with rm0
        con.print(CONTROL_NOTE)
    (root / "outcome.json").write_text(json.dumps(res, indent=1) + "\n")
    con.print(f"report: {root / 'report/report.md'}  chart: {root / 'report/accuracy.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "runs/demo"))
