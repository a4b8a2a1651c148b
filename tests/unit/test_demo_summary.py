"""`make demo`'s closing numbers (demo_summary.outcome): accuracy and intervals from the prediction shards, the
paired test, best-of-4 vs a random pick, and the verdict sentence — on a run directory written by hand."""

from __future__ import annotations

import json
from pathlib import Path

from gramr2_cli.reports import demo_summary


def _shard(d: Path, recs: list[dict]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "part-00000-of-00001.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def _preds(gold: list[str], said: list[str | None]) -> list[dict]:
    return [{"id": f"p{i}", "label": g, "meta": {"judgment": {"label": v}}} for i, (g, v) in enumerate(zip(gold, said))]


def _run(tmp_path: Path, rm0: list, rm1: list, gold: list[str]) -> Path:
    root = tmp_path / "demo"
    models = {}
    for name, said in (("rm0", rm0), ("rm1", rm1)):
        _shard(root / "report/predictions" / name, _preds(gold, said))
        models[name] = {"predictions": str(root / "report/predictions" / name),
                        "metrics": {"overall": {"pred_A_rate": said.count("A") / len(said)}}}
    (root / "report/report.json").write_text(json.dumps({"models": models}))
    (root / "iter-1/kept").mkdir(parents=True)
    (root / "iter-1/kept/summary.json").write_text(json.dumps(
        {"metrics": {"precision_before": 0.8, "precision_after": 0.9, "kept_fraction": 0.5}}))
    lists = [{"prompt": f"q{i}", "candidates": ["a", "b", "c", "d"],
              "meta": {"best": i % 4, "rank": {"winner": 0, "judge_calls": 6}}} for i in range(8)]
    _shard(root / "best-of-4", lists)
    return root


def test_outcome_counts_by_hand(tmp_path):
    gold = list("ABABABABAB")
    rm0 = list("AAAAAAAAAA")                   # right on the 5 A's
    rm1 = list("ABABABABA") + [None]          # right on 9 (the missing verdict is wrong)
    res = demo_summary.outcome(_run(tmp_path, rm0, rm1, gold))
    m0, m1 = res["models"]["rm0"], res["models"]["rm1"]
    assert (m0["correct"], m0["n"], m1["correct"], m1["n"]) == (5, 10, 9, 10)
    assert m0["pred_A_rate"] == 1.0 and m1["pred_A_rate"] == 0.5
    lo, hi = m1["ci95"]
    assert 0.59 < lo < 0.6 and 0.98 < hi < 0.99          # Wilson 9/10: 0.5958–0.9821
    t = res["rm1_vs_rm0"]
    assert (t["only_first"], t["only_second"]) == (0, 4) and abs(t["p"] - 0.125) < 1e-12   # 2 * (1/2)^4
    assert res["verdict"].startswith("No measurable effect") and "p = 0.125" in res["verdict"]
    b = res["best_of_4"]
    assert (b["correct"], b["lists"], b["random_pick"]) == (2, 8, 0.25)   # winner 0 is best for i = 0, 4
    assert res["pseudo_labels"] == {"precision_before": 0.8, "precision_after": 0.9, "kept_fraction": 0.5}


def test_verdict_says_helped_only_when_significant(tmp_path):
    gold = ["A"] * 12
    res = demo_summary.outcome(_run(tmp_path, ["B"] * 12, ["A"] * 12, gold))
    assert res["rm1_vs_rm0"]["p"] < 0.001
    assert res["verdict"].startswith("Self-training helped here: rm1 100.0% vs rm0 0.0%")
    res = demo_summary.outcome(_run(tmp_path / "2", ["A"] * 12, ["B"] * 12, gold))
    assert res["verdict"].startswith("Self-training hurt here")


def test_printed_summary_ends_with_the_verdict_and_the_control_caveat(tmp_path, capsys):
    gold = ["A"] * 12
    root = _run(tmp_path, ["B"] * 12, ["A"] * 12, gold)
    assert demo_summary.main(str(root)) == 0
    err = " ".join(capsys.readouterr().err.split())           # rich wraps lines at the console width
    verdict_at = err.index("Self-training helped here")
    assert "compute-matched control" in err[verdict_at:]        # the caveat follows the sentence
    assert json.loads((root / "outcome.json").read_text())["verdict"].startswith("Self-training helped here")


def test_no_control_caveat_without_a_second_model(tmp_path, capsys):
    root = _run(tmp_path, ["A"] * 4, ["A"] * 4, ["A"] * 4)
    rep = json.loads((root / "report/report.json").read_text())
    rep["models"].pop("rm1")
    (root / "report/report.json").write_text(json.dumps(rep))
    assert demo_summary.main(str(root)) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "Not measured: the report has fewer than two models." in err
    assert "compute-matched control" not in err
