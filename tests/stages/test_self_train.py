"""self-train: the loop's wiring (who labels, what trains from what, merged data, batches), skip-on-rerun, and
one real iteration on the tiny model."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from gramr2_cli import engines, recipe
from gramr2_cli.core import prompts, readers, records, shards
from gramr2_cli.core.errors import GramrError
from gramr2_cli.engines import Generation
from gramr2_cli.stages import self_train, training


class FakeModel:
    """Answers judge prompts like a correct judge (the response saying 'right' wins) and prover prompts with
    a proof for the given label."""

    context_length = None

    def __init__(self, path):
        self.path = path
        self.tokenizer = SimpleNamespace(chat_template=None)

    def generate(self, prompts_, *, n, temperature, max_new_tokens, seed, top_p=1.0, answer_token_probs=False):
        out = []
        for p in prompts_:
            m = re.search(r"Response ([AB]) is better\. Prove it", p)
            if m:
                lab = m.group(1)
                text = f"Feedback: checked.\nComparison: {lab} is right.\nConclusion: Response {lab} is better."
                out.append([Generation(text, 9, -3.0, -0.3)] * n)
                continue
            first = p.split("[Response A]\n", 1)[1]
            v = "A" if first.startswith("right") else "B"
            text = prompts.judgment_text(prompts.format_rationale("ok", "ok", f"Response {v} is better."), v)
            out.append([Generation(text, 9, -3.0, -0.3, ab_probs=(0.9, 0.1) if v == "A" else (0.1, 0.9))] * n)
        return out

    def score(self, prompts_, conts):
        return [-40.0 if "Prove it" not in p else -10.0 for p in prompts_]

    def close(self):
        pass


@pytest.fixture
def fakes(monkeypatch):
    log = {"engines": [], "train": []}

    def load_engine(model, gen_cfg, seed=0):
        log["engines"].append(str(model))
        return FakeModel(model)

    def fake_train(cfg, inputs, output, *, stage, **kw):
        log["train"].append({"stage": stage, "model": cfg.model, "init": cfg.train.init,
                             "inputs": [str(i) for i in inputs], "n": len(readers.read_all(inputs)), **kw})
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps({"metrics": {"final_loss": 0.5}}))
        (out / "manifest.json").write_text(json.dumps({"kind": "model", "done": True}))
        return shards.Summary(stage)

    monkeypatch.setattr(engines, "load_engine", load_engine)
    monkeypatch.setattr(training, "run", fake_train)
    return log


def data(tmp_path: Path, n: int = 12, prefix: str = "") -> tuple[Path, Path]:
    unl = []
    for i in range(n):
        a, b = (f"right {i}", f"wrong {i}") if i % 2 else (f"wrong {i}", f"right {i}")
        unl.append(records.new_pair(f"{prefix}q{i}", a, b, meta={"gold_label": "A" if i % 2 else "B"}))
    gold = [records.new_pair(f"g{i}", "right", "wrong", label="A", rationale="Feedback: a\n\nComparison: b\n\n"
                                                                               "Conclusion: Response A is better.")
            for i in range(2)]
    u, g = tmp_path / "unlabeled.jsonl", tmp_path / "gold.jsonl"
    u.write_text("".join(json.dumps(r) + "\n" for r in unl))
    g.write_text("".join(json.dumps(r) + "\n" for r in gold))
    return u, g


def cfg_for(tmp_path, u, g, *extra):
    return recipe.load(None, ["model=backbone-dir", "self_train.rm=rm0", "prove.prover=prover-dir",
                              f"self_train.unlabeled={u}", f"self_train.train_data={g}", "filter.balance_ab=false",
                              "self_label.samples=2", *extra])


def test_loop_wiring_continue(tmp_path, fakes):
    u, g = data(tmp_path)
    run = tmp_path / "run"
    s = self_train.run(cfg_for(tmp_path, u, g, "self_train.init=continue"), run, progress=False)
    rm = [str(self_train.step_dir(run, i, "rm")) for i in (1, 2)]
    # labelers: the initial RM, then each iteration's new RM; the prover proves every iteration
    assert [e for e in fakes["engines"] if e != "prover-dir"] == ["rm0", *rm]
    assert fakes["engines"].count("prover-dir") == 3
    # training continues from the previous RM; the backbone stays the model spec
    assert [t["init"] for t in fakes["train"]] == ["rm0", *rm]
    assert {t["model"] for t in fakes["train"]} == {"backbone-dir"} and all(t["resume"] for t in fakes["train"])
    # the unlabeled source is split into 3 disjoint batches that cover it
    ids = [{r["id"] for r in readers.read_all([self_train.step_dir(run, i, "labeled")])} for i in (1, 2, 3)]
    assert sum(map(len, ids)) == 12 and len(set().union(*ids)) == 12
    # training data accumulates: gold + kept of every iteration so far
    kept = [len(readers.read_all([self_train.step_dir(run, i, "kept")])) for i in (1, 2, 3)]
    assert kept == [len(x) for x in ids]           # the fake judge is right and confident: all kept
    assert [t["n"] for t in fakes["train"]] == [2 + kept[0], 2 + kept[0] + kept[1], 14]
    rows = s.metrics["iterations"]
    assert [r["kept_precision"] for r in rows] == [1.0, 1.0, 1.0] and rows[2]["final_loss"] == 0.5
    assert [r["label_precision"] for r in rows] == [1.0, 1.0, 1.0]       # read from the shard's own summary
    assert [r["labeled"] for r in rows] == [len(x) for x in ids] and rows[2]["train_records"] == 14
    assert s.counts == {"steps_run": 15, "steps_skipped": 0}
    assert json.loads((run / "summary.json").read_text())["counts"]["steps_run"] == 15


def test_rerun_skips_finished_steps_and_redoes_the_missing_one(tmp_path, fakes):
    u, g = data(tmp_path)
    run = tmp_path / "run"
    cfg = cfg_for(tmp_path, u, g)
    self_train.run(cfg, run, progress=False)
    assert [t["init"] for t in fakes["train"]] == ["backbone"] * 3
    fakes["engines"].clear()
    fakes["train"].clear()
    s = self_train.run(cfg, run, progress=False)
    assert s.counts == {"steps_run": 0, "steps_skipped": 15} and fakes["engines"] == [] and fakes["train"] == []
    (self_train.step_dir(run, 3, "rm") / "manifest.json").unlink()
    s = self_train.run(cfg, run, progress=False)
    assert s.counts == {"steps_run": 1, "steps_skipped": 14} and len(fakes["train"]) == 1


def test_one_source_per_iteration(tmp_path, fakes):
    srcs = []
    for i in range(2):
        (tmp_path / f"d{i}").mkdir()
        u, g = data(tmp_path / f"d{i}", n=4, prefix=f"s{i}-")
        srcs.append(str(u))
    cfg = recipe.load(None, ["model=b", "self_train.rm=rm0", "prove.prover=p", "self_train.iterations=2",
                             f"self_train.unlabeled={','.join(srcs)}", f"self_train.train_data={g}"])
    self_train.run(cfg, tmp_path / "run", progress=False)
    got = readers.read_all([self_train.step_dir(tmp_path / "run", 2, "labeled")])
    assert sorted(r["id"] for r in got) == sorted(r["id"] for r in readers.read_all([srcs[1]]))


@pytest.mark.parametrize("sets,msg", [
    (["self_train.rm="], "initial reward model"),
    (["prove.prover="], "prover"),
    (["self_train.init=warm"], "init"),
    (["self_train.unlabeled=a,b"], "one source"),
])
def test_bad_loop_configs_fail_before_any_work(tmp_path, fakes, sets, msg):
    u, g = data(tmp_path)
    with pytest.raises(GramrError, match=msg):   # at load (the recipe's own problems) or when the loop starts
        self_train.run(cfg_for(tmp_path, u, g, *sets), tmp_path / "run", progress=False)
    assert fakes["engines"] == [] and fakes["train"] == []


def test_one_real_iteration_on_the_tiny_model(tmp_path, tiny_model):
    """Integration: real hf engine, real trainer. The random tiny RM writes no verdict, so every pseudo-label is
    null: prove skips all, filter keeps none, and the RM retrains on the earlier (gold) data alone."""
    u, g = data(tmp_path, n=4)
    cfg = recipe.load(None, [f"model={tiny_model}", f"self_train.rm={tiny_model}", f"prove.prover={tiny_model}",
                             "self_train.iterations=1", f"self_train.unlabeled={u}", f"self_train.train_data={g}",
                             "generate.engine=hf", "generate.max_new_tokens=8", "self_label.samples=1",
                             "train.max_steps=1", "train.batch_size=2", "train.save_steps=100"])
    s = self_train.run(cfg, tmp_path / "run", progress=False)
    d = lambda step: self_train.step_dir(tmp_path / "run", 1, step)
    labeled = readers.read_all([d("labeled")])
    assert len(labeled) == 4 and all(r["label"] is None for r in labeled)
    assert readers.read_all([d("proved")]) == [] and readers.read_all([d("kept")]) == []
    assert len(readers.read_all([d("train")])) == 2
    assert shards.is_done(d("rm")) and (d("rm") / "config.json").exists()
    assert s.metrics["iterations"][0]["train_records"] == 2


def _make_dry_run(*args: str) -> list[list[str]]:
    """`make -n -B` over mk/demo.mk + mk/self-train.mk (every step, whatever runs/demo holds in this checkout):
    the gramr2 command lines it would run, as argv lists."""
    import shlex
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(["make", "-s", "-n", "-B", "-f", "mk/demo.mk", "-f", "mk/self-train.mk", "-C", str(repo),
                          "ST_SETUP=", "GRAMR2=gramr2", "DEMO=runs/demo", *args],
                         capture_output=True, text=True, check=True).stdout
    return [shlex.split(ln) for ln in out.replace("\\\n", " ").splitlines() if ln.startswith("gramr2 ")]


def test_demo_rm1_continues_at_the_recipes_iteration_learning_rate():
    """rm1 of `make demo` (a `pretrain --init rm0`) trains at recipes/demo.yaml's self_train.lr, as an iteration
    of `gramr2 self-train` with init=continue does; from the backbone an iteration keeps train.lr."""
    (rm1,) = [a for a in _make_dry_run("demo-run") if a[1] == "pretrain" and "runs/demo/rm1" in a]
    cfg = recipe.load_recipe("recipes/demo.yaml")
    assert rm1[-2] == "-s" and rm1[-1].startswith("train.lr=") and cfg.self_train.lr == 5e-5
    assert float(rm1[-1].split("=")[1]) == cfg.self_train.lr
    assert cfg.train.lr == 2e-4
    cont = recipe.load_recipe("recipes/demo.yaml", ["self_train.init=continue", "self_train.rm=r0"])
    assert self_train.iteration_config(cont, "out", 1)[1].train.lr == 5e-5
    back = recipe.load_recipe("recipes/demo.yaml", ["self_train.init=backbone", "self_train.rm=r0"])
    assert self_train.iteration_config(back, "out", 1)[1].train.lr == 2e-4


def test_make_self_train_calls_the_cli_on_the_demo_outputs():
    """mk/self-train.mk holds no copy of the loop: `make self-train` is one `gramr2 self-train` call whose
    defaults are what `make demo` writes (issue 12 item 6, issue 17 item 14)."""
    (argv,) = _make_dry_run("self-train", "ITER=2")
    assert argv == ["gramr2", "self-train", "runs/demo/data/unlabeled", "-o", "runs/self-train",
                    "-c", "recipes/demo.yaml", "-s", "self_train.iterations=2", "-s", "self_train.rm=runs/demo/rm0",
                    "-s", "prove.prover=runs/demo/prover", "-s", "self_train.train_data=runs/demo/proved",
                    "-s", "self_train.init=backbone", "-s", "train.max_steps=40"]
    demo = _make_dry_run("demo-run")
    outputs = {a[a.index("-o") + 1] for a in demo}
    assert {"runs/demo/rm0", "runs/demo/prover", "runs/demo/proved", "runs/demo/data"} <= outputs
    assert ["self-label", "runs/demo/data/unlabeled"] in [a[1:3] for a in demo]   # the demo's unlabeled split
    sets = [argv[i + 1] for i, x in enumerate(argv) if x == "-s"]
    cfg = recipe.load(argv[argv.index("-c") + 1], sets, self_train__unlabeled=[argv[2]])
    self_train.check_ready(cfg)
    assert (cfg.self_train.iterations, cfg.self_train.rm, cfg.self_train.unlabeled, cfg.self_train.train_data,
            cfg.prove.prover, cfg.train.max_steps) == (2, "runs/demo/rm0", ["runs/demo/data/unlabeled"],
                                                       ["runs/demo/proved"], "runs/demo/prover", 40)
