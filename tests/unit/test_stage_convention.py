"""One stage convention (issue 24 point 4): `run(cfg, inputs, output, *, …)`, the data positional and everything
else by keyword; a stage never changes the caller's cfg; commands call stages by keyword."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import gramr2_cli
from gramr2_cli import recipe, stages
from gramr2_cli.stages import evaluate_lists, training

DATA = ("cfg", "inputs", "output")
POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def stage_runs() -> dict[str, object]:
    mods = [importlib.import_module(f"gramr2_cli.stages.{m.name}") for m in pkgutil.iter_modules(stages.__path__)]
    return {m.__name__: m.run for m in mods if hasattr(m, "run")}


def test_every_stage_run_takes_only_the_data_positionally():
    runs = stage_runs()
    assert {"gramr2_cli.stages.training", "gramr2_cli.stages.evaluate_lists", "gramr2_cli.stages.synth"} <= set(runs)
    bad = {}
    for name, run in runs.items():
        positional = [p.name for p in inspect.signature(run).parameters.values() if p.kind in POSITIONAL]
        if positional[0] != "cfg" or [p for p in positional if p not in DATA] or positional != sorted(
                positional, key=DATA.index):
            bad[name] = positional
    assert bad == {}


def test_evaluate_lists_and_training_take_their_options_by_keyword():
    kinds = {n: p.kind for n, p in inspect.signature(evaluate_lists.run).parameters.items()}
    assert [n for n, k in kinds.items() if k == inspect.Parameter.KEYWORD_ONLY] == [
        "specs", "slugs", "engines", "overwrite", "progress"]
    assert inspect.signature(training.run).parameters["stage"].kind == inspect.Parameter.KEYWORD_ONLY


def test_prover_train_does_not_change_the_callers_cfg(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(training.core, "train", lambda cfg, inputs, output, **kw: seen.append(cfg.train.objective))
    cfg = recipe.load_recipe(None, [])
    training.run(cfg, [], tmp_path / "o", stage="prover-train")
    assert (seen, cfg.train.objective) == (["prover"], "reasoning")


def test_commands_call_stages_with_at_most_the_data_positionally():
    """Every `….run(…)` call in commands/ (and training's `_run` helper) passes at most 3 values positionally:
    cfg, inputs, output (or the stage name, inputs, output)."""
    root = Path(gramr2_cli.__file__).parent / "commands"
    calls = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name in ("run", "_run"):
                calls.append((path.name, node.lineno, len(node.args)))
    assert len(calls) >= 10
    assert [c for c in calls if c[2] > 3] == []
