"""The final table of `make demo`: what each step took, what the filter did to pseudo-label precision, the
reward model before vs after one self-training iteration, and the best-of-4 picks. Reads only the
`summary.json` / `training_summary.json` / `report.json` files the stages wrote.

    python -m gramr2_cli.demo_summary runs/demo
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

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

    rep = _load(root / "report/report.json")
    et = Table(title="held-out synthetic test: before vs after self-training", title_justify="left")
    for c in ("model", "pairs", "accuracy", "parse rate", "pred A rate"):
        et.add_column(c)
    for name, m in (rep.get("models") or {}).items():
        o = m.get("metrics", {}).get("overall", {})
        et.add_row(name, str(o.get("n")), _pct(o.get("accuracy")), _pct(o.get("parse_rate")), _pct(o.get("pred_A_rate")))
    con.print(et)

    bt = Table(title="best-of-4 (knockout, both orders)", title_justify="left")
    for c in ("prompt", "picked", "right?", "judge calls"):
        bt.add_column(c)
    for part in sorted((root / "best-of-4").glob("part-*.jsonl")):
        for line in part.read_text().splitlines():
            r = json.loads(line)
            rk = r["meta"]["rank"]
            best = r["meta"].get("best")
            bt.add_row(r["prompt"], r["candidates"][rk["winner"]],
                       "–" if best is None else ("yes" if rk["winner"] == best else "no"), str(rk["judge_calls"]))
    con.print(bt)
    con.print(f"report: {root / 'report/report.md'}  chart: {root / 'report/accuracy.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "runs/demo"))
