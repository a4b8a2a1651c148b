"""benchmarks/replicate_report.py: the results page is built from what the runs wrote, nothing else."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from replicate_report import detectable_difference, mcnemar_power, pairs_needed, sign_test, write_report  # noqa: E402

ARGS = {"seeds": [0, 1], "iterations": 1, "adapt_sizes": [50], "rm_steps": 8}


def _report(path: Path, accs: dict[str, float], right: dict[str, list[bool]] | None = None) -> None:
    path.mkdir(parents=True)
    models = {n: {"metrics": {"overall": {"accuracy": a, "parse_rate": 1.0, "pred_A_rate": 0.5}}}
              for n, a in accs.items()}
    for n, oks in (right or {}).items():         # evaluate's prediction shards: gold A, verdict A when right
        d = path / "predictions" / n
        d.mkdir(parents=True)
        rows = [{"id": f"p{i}", "label": "A", "meta": {"judgment": {"label": "A" if ok else "B"}}}
                for i, ok in enumerate(oks)]
        (d / "part-00000-of-00001.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        models[n]["predictions"] = str(d)
    (path / "report.json").write_text(json.dumps({"config": {}, "models": models}))


def _seed(root: Path, s: int, shift: float) -> None:
    r = root / f"seed-{s}"
    _report(r / "eval", {"backbone": 0.0, "b": 0.5 + shift, "c1": 0.6 + shift, "d": 0.7 + shift},
            {"b": [True, True, True, False]})
    _report(r / "eval-a", {"a": 0.4 + shift}, {"a": [False, True, False, True]})
    _report(r / "eval-control", {"control-1": 0.55 + shift})
    _report(r / "eval-adapt", {"c3": 0.5, "from_c3_50": 0.55, "from_backbone_50": 0.45})
    (r / "st").mkdir()
    (r / "st/summary.json").write_text(json.dumps({"metrics": {"iterations": [
        {"iteration": 1, "labeled": 10, "label_precision": 0.6, "kept": 4, "kept_precision": 0.75,
         "train_records": 20, "final_loss": 0.25}]}}))
    (r / "cpu_seconds.json").write_text(json.dumps({"b:reasoning": 100.0 + s}))


def test_report_tables_come_from_the_runs(tmp_path):
    out, docs = tmp_path / "runs", tmp_path / "docs"
    _seed(out, 0, 0.0)
    _seed(out, 1, 0.1)
    (docs).mkdir()
    (docs / "results-full-grid_notes.md").write_text("notes written by hand\n")
    write_report(out, [0, 1], docs, ARGS)
    md = (docs / "results-full-grid.md").read_text()
    assert "| (a) label objective (G-baseline) | 45.0 (40.0, 50.0) |" in md
    assert "| (c) + self-training iteration 1 | 65.0 (60.0, 70.0) |" in md
    assert "| (d) (c) + gold-rationale fine-tuning | 75.0 (70.0, 80.0) |" in md
    assert "| control: (b) + 1 × iter_steps on the labeled set only | 60.0 (55.0, 65.0) | 100.0 (100.0, 100.0) |" in md
    # b vs a per seed: p0, p2 b only; p3 a only -> pooled over 2 seeds 4 vs 2
    # 8 pooled pairs, 6 discordant (share 0.75), difference 2/8: detectable 73.6 pts, 92 pairs needed
    assert ("| (b) reasoning, prover rationales vs (a) label objective (G-baseline) | 8 | 4 | 2 | 0.688 | 73.6 pts | 92 |"
            in md)
    assert "| 0 | 1 | 10 | 60.0 | 4 | 75.0 | 20 | 0.250 |" in md
    assert "| 50 examples, LoRA from (c3) | 55.0 (55.0, 55.0) |" in md
    assert "| step | seed 0 | seed 1 |" in md and "| b:reasoning | 100 | 101 |" in md
    assert md.rstrip().endswith("notes written by hand")
    assert (docs / "results/main.png").stat().st_size > 0 and (docs / "results/adapt.png").exists()
    assert json.loads((out / "results.json").read_text())["seeds"] == [0, 1]


def test_report_skips_unfinished_seeds(tmp_path):
    out, docs = tmp_path / "runs", tmp_path / "docs"
    _seed(out, 0, 0.0)
    (out / "seed-1").mkdir()                      # started, not evaluated yet
    write_report(out, [0, 1], docs, ARGS)
    md = (docs / "results-full-grid.md").read_text()
    assert "Seeds: [0]" in md and "| (b) reasoning, prover rationales | 50.0 (50.0) |" in md


def test_cpu_table_names_the_seed_of_each_value(tmp_path):
    out, docs = tmp_path / "runs", tmp_path / "docs"
    for s in (0, 1, 2):
        _seed(out, s, 0.0)
    (out / "seed-1/cpu_seconds.json").write_text(json.dumps({"prove": 7.0}))   # seed 1 lacks b:reasoning
    write_report(out, [0, 1, 2], docs, dict(ARGS, seeds=[0, 1, 2]))
    md = (docs / "results-full-grid.md").read_text()
    assert "| b:reasoning | 100 | – | 102 |" in md and "| prove | – | 7 | – |" in md


def test_sign_test_exact_values():
    assert sign_test(0, 0) == 1.0
    assert sign_test(3, 3) == 1.0
    assert sign_test(5, 0) == sign_test(0, 5) == 2 / 32
    assert abs(sign_test(4, 2) - 2 * 22 / 64) < 1e-12


def test_power_of_the_paired_test():
    """Hand-checked: n = (z.975·√ψ + z.8·√(ψ−δ²))² / δ² = (1.95996·0.54772 + 0.84162·0.53852)² / 0.01 = 233.1."""
    assert pairs_needed(0.3, 0.1) == 234
    assert mcnemar_power(234, 0.3, 0.1) >= 0.8 > mcnemar_power(233, 0.3, 0.1)
    assert abs(mcnemar_power(100, 0.3, 0.0) - 0.025) < 1e-9        # no effect: the one-sided α/2
    assert 0.0995 < detectable_difference(234, 0.3) <= 0.1
    assert detectable_difference(16, 0.3) == 0.3                    # out of reach: the discordant share itself
    assert pairs_needed(0.3, 0.0) is None


def test_replicate_set_overrides_reach_every_step_on_the_replication_recipe(tmp_path, monkeypatch):
    """`benchmarks/replicate.py -s KEY=VALUE` (what `make replicate-decisive` uses for 512 test pairs and more
    votes) is passed to each gramr2 call that reads recipes/replicate-synthetic.yaml as the seed's options, and to
    no call on another recipe ((d)'s finetune, (e)'s adapt) or to the gold set's fixed split sizes."""
    import argparse

    import replicate
    calls = []
    monkeypatch.setattr(replicate, "gramr2", lambda *args: calls.append([str(a) for a in args]) or 0.0)
    a = argparse.Namespace(set=["synth.splits.test=2.0", "self_label.samples=4"], iterations=2, rm_steps=4,
                           prover_steps=4, iter_steps=4, ft_steps=2, gold_n=8, adapt_sizes=[50], adapt_epochs=1,
                           grid="full")
    (tmp_path / "seed-3").mkdir()
    replicate.Seed(3, tmp_path, a).run()
    sets = ["-s", "synth.splits.test=2.0", "-s", "self_label.samples=4"]
    gold = [c for c in calls if c[:2] == ["data", "synth"] and "--n" in c]      # (d)'s fresh gold set
    on_recipe = [c for c in calls if str(replicate.RECIPE) in c and c not in gold]
    others = [c for c in calls if c not in on_recipe]
    assert len(gold) == 1 and "self_label.samples=4" not in gold[0]
    names = {c[0] if c[0] != "data" else " ".join(c[:2]) for c in on_recipe}
    assert {"data synth", "pretrain", "prover-train", "prove", "self-train", "evaluate"} <= names
    for c in on_recipe:
        i = c.index(str(replicate.RECIPE))
        assert c[i + 1:i + 3] == ["--seed", "3"] and c[i + 3:i + 7] == sets, c
    assert {c[0] for c in others} >= {"finetune", "adapt"}
    assert all("self_label.samples=4" not in c for c in others)


def test_decisive_grid_trains_and_judges_only_b_the_last_iteration_and_its_control(tmp_path, monkeypatch):
    """`--grid decisive` (issue 22's replication): no (a), (d), (e) nor backbone; (b), self-training for all
    iterations, the control continued as many times, and two evaluations: (b) + the last iteration, the last
    control."""
    import argparse

    import replicate
    calls = []
    monkeypatch.setattr(replicate, "gramr2", lambda *args: calls.append([str(a) for a in args]) or 0.0)
    a = argparse.Namespace(set=[], iterations=3, rm_steps=4, prover_steps=4, iter_steps=4, ft_steps=2, gold_n=8,
                           adapt_sizes=[50], adapt_epochs=1, grid="decisive")
    (tmp_path / "seed-0").mkdir()
    replicate.Seed(0, tmp_path, a).run()
    r = tmp_path / "seed-0"
    assert [c[0] for c in calls] == ["data", "prover-train", "prove", "pretrain", "self-train",
                                     "pretrain", "pretrain", "pretrain", "evaluate", "evaluate"]
    assert "--objective" not in calls[3]
    controls = calls[5:8]
    assert [c[c.index("--init") + 1] for c in controls] == [str(r / "b"), str(r / "control/iter-1"),
                                                            str(r / "control/iter-2")]
    # compute-matched: the control continues at the iterations' learning rate (self_train.lr, from demo.yaml)
    assert [c[-2:] for c in controls] == [["-s", "train.lr=5e-05"]] * 3
    assert replicate.iteration_lr(["self_train.lr=0"]) == 2e-4      # unset: train.lr, as the iterations do
    ev, ev_ctl = calls[8], calls[9]
    assert [ev[i + 1] for i, x in enumerate(ev) if x == "--model"] == [str(r / "b"), str(r / "st/iter-3/rm")]
    assert [ev_ctl[i + 1] for i, x in enumerate(ev_ctl) if x == "--model"] == [str(r / "control/iter-3")]


def test_decisive_report_maps_rows_to_b_last_iteration_and_last_control(tmp_path):
    out, docs = tmp_path / "runs", tmp_path / "docs"
    args = dict(ARGS, iterations=3, adapt_sizes=[], grid="decisive")
    for s, shift in ((0, 0.0), (1, 0.1)):
        r = out / f"seed-{s}"
        _report(r / "eval", {"b": 0.5 + shift, "c3": 0.7 + shift},
                {"b": [True, False, False, False], "c3": [True, True, True, False]})
        _report(r / "eval-control", {"control-3": 0.6 + shift}, {"control-3": [True, True, False, False]})
        (r / "machine.json").write_text(json.dumps({"model": "Xeon", "cores": 2, "flags": ["amx_bf16", "avx2"]}))
    write_report(out, [0, 1], docs, args)
    md = (docs / "results.md").read_text()
    assert "CPU: Xeon; amx_bf16 avx2; 2 cores\n" in md
    assert "| (b) reasoning, prover rationales | 55.0 (50.0, 60.0) |" in md
    assert "| (c) + self-training iteration 3 | 75.0 (70.0, 80.0) |" in md
    assert "| control: (b) + 3 × iter_steps on the labeled set only | 65.0 (60.0, 70.0) |" in md
    assert "iteration 1 |" not in md and "(a) label objective" not in md.split("### Paired")[0]
    # c3 vs control-3 per seed: p2 c3 only -> pooled 2 vs 0 over 8 pairs
    assert "| (c) + self-training iteration 3 vs control: (b) + 3 × iter_steps on the labeled set only | 8 | 2 | 0 |" in md
    assert "Task adaptation" not in md and "make replicate-decisive" in md
    assert (docs / "results/decisive-main.png").stat().st_size > 0 and not (docs / "results-full-grid.md").exists()
