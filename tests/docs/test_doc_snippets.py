"""Issue 23: every ```python block of README.md and docs/ runs as a user would copy it, or is marked an excerpt.

A block runs as a script (`__main__`) in a fresh directory (recipes/ linked in) on the tiny model: `RUN` gives, per block, the
lines put before it (data it assumes, e.g. `questions`), the exact substitutions (model paths → the tiny model,
token budgets down, `.train()` left to tests/stages/test_trl_grpo.py) and checks on its results after it; each
substitution must still match the block, so a changed doc fails here until this table follows it.
A block preceded by `<!-- snippet: excerpt; given: a, b -->` is a fragment: it must compile, use no name that is
neither bound in it nor listed after `given:`, import what it imports, and call gramr2 functions with arguments
their real signatures accept.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import re
import runpy
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
BLOCK = re.compile(r"(?:<!-- snippet: (?P<mark>[^>]*?) -->\n)?```python\n(?P<code>.*?)```", re.S)


def blocks() -> list[tuple[str, str | None, str]]:
    """(id `file:line`, marker or None, code) of every python block."""
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            line = text.count("\n", 0, m.start("code"))
            out.append((f"{doc.relative_to(REPO)}:{line}", m.group("mark"), m.group("code")))
    return out


TINY = "__TINY__"      # replaced by the tiny model's path
PAIRS = "__PAIRS__"    # replaced by the tiny labeled pairs' path

# block (its first line) -> (preamble, {old: new}, checks)
RUN: dict[tuple[str, str], tuple[str, dict[str, str], str]] = {
    ("docs/rlhf.md", "from gramr2_cli import load_engine, load_recipe, render_prompt"): (
        'questions = ["What is 2 + 2?", "Name a colour."]\n',
        {'"path/to/sft-policy"': f'"{TINY}"',
         '["generate.max_new_tokens=512"]': '["generate.max_new_tokens=8", "generate.engine=hf"]',
         "max_new_tokens=512": "max_new_tokens=8"},
        "assert len(references) == 2 and all(isinstance(r, str) for r in references)\npolicy.close()\n"),
    ("docs/rlhf.md", "from datasets import load_dataset"): (
        'import json\nopen("prompts.jsonl", "w").write(json.dumps({"prompt": "Say hi."}) + "\\n")\n',
        {'"path/to/sft-policy"': f'"{TINY}"', "num_generations=4), train_dataset=ds)":
         "num_generations=4, use_cpu=True, bf16=False, report_to=[]), train_dataset=ds)", "trainer.train()\n": ""},
        "assert trainer.reward_funcs[0] is reward and len(ds) == 1\n"),
    ("docs/rlhf.md", "# grpo_demo.py — python grpo_demo.py"): (
        "",
        {'str(embedded_model("smollm2-135m"))': f'"{TINY}"', 'model="runs/demo/rm1"': f'model="{TINY}"',
         'make_trl_reward("runs/demo/rm1"': f'make_trl_reward("{TINY}"', "args=args, train_dataset=ds).train()":
         "args=args, train_dataset=ds)\n    assert cfg.serve.pairing == 'round_robin' and cfg.model == policy and cfg.prompt == 'gramr2-short'"},
        ""),
    ("docs/training.md", "from pathlib import Path"): (
        "",
        {'Path("out/synth/labeled")': f'Path("{PAIRS}")', '["train.max_steps=40"]':
         f'["train.max_steps=1", "model={TINY}", "train.batch_size=2"]'},
        'assert summary.counts and (Path("out/rm") / "config.json").exists()\n'
        'assert (Path("out/rm-2") / "config.json").exists()\n'),
    ("docs/engines.md", "from gramr2_cli import load_engine, load_recipe"): (
        'prompts = ["Hello", "2 + 2 ="]\ncontinuations = [" there", " 4"]\n',
        {'["generate.engine=hf"]': f'["generate.engine=hf", "model={TINY}"]', "max_new_tokens=192": "max_new_tokens=4"},
        "assert [len(g) for g in gens] == [4, 4] and len(scores) == 2 and all(s < 0 for s in scores)\n"),
}

ALL = blocks()


def _key(block_id: str, code: str) -> tuple[str, str]:
    return block_id.rsplit(":", 1)[0], code.splitlines()[0]


def test_every_run_entry_names_a_block():
    """A stale RUN entry (its block changed or moved to another page) fails here."""
    have = {_key(b, code) for b, mark, code in ALL if mark is None}
    assert set(RUN) <= have, set(RUN) - have


def test_there_are_blocks_of_both_kinds():
    assert sum(mark is None for _, mark, _ in ALL) >= 5 and any(mark for _, mark, _ in ALL)


def script(block_id: str, code: str, tiny: Path, pairs: Path) -> str:
    pre, subs, post = RUN.get(_key(block_id, code), ("", {}, ""))
    for old, new in subs.items():
        assert old in code, f"{block_id}: substitution {old!r} no longer matches; update RUN"
        code = code.replace(old, new)
    return (pre + code + post).replace(TINY, str(tiny)).replace(PAIRS, str(pairs))


@pytest.mark.parametrize("block_id, code", [(b, c) for b, m, c in ALL if m is None], ids=lambda x: x[:40])
def test_block_runs(block_id, code, tiny_model, tiny_pairs, tmp_path, monkeypatch):
    """In this process, as `python snippet.py` (run_name __main__), in a fresh directory: a subprocess per block
    paid torch/transformers/trl imports five times (6.5 min on the loaded 2-core machine)."""
    (tmp_path / "recipes").symlink_to(REPO / "recipes")
    path = tmp_path / "snippet.py"
    path.write_text(script(block_id, code, tiny_model, tiny_pairs))
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(path), run_name="__main__")


# ---------------------------------------------------------------- excerpts

def undefined_names(tree: ast.AST) -> set[str]:
    """Names read in `tree` that nothing in it binds (imports, assignments, defs, arguments) and are no builtins."""
    bound, loaded = set(dir(builtins)), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return loaded - bound


def imported(tree: ast.AST) -> dict[str, object]:
    """Run the block's imports; {local name: object}."""
    names: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = importlib.import_module(a.name if a.asname else
                                                                                  a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            mod = importlib.import_module(node.module)
            for a in node.names:
                obj = getattr(mod, a.name, None)
                names[a.asname or a.name] = obj if obj is not None else importlib.import_module(
                    f"{node.module}.{a.name}")
    return names


def _target(func: ast.expr, names: dict[str, object]):
    if isinstance(func, ast.Name):
        return names.get(func.id)
    if isinstance(func, ast.Attribute):
        base = _target(func.value, names)
        return getattr(base, func.attr) if base is not None and inspect.ismodule(base) else None
    return None


def check_calls(tree: ast.AST, names: dict[str, object]) -> None:
    """Every call of a gramr2_cli function binds to its real signature."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or any(isinstance(a, ast.Starred) for a in node.args) \
                or any(k.arg is None for k in node.keywords):
            continue
        fn = _target(node.func, names)
        if fn is None or not callable(fn) or not getattr(fn, "__module__", "").startswith("gramr2_cli"):
            continue
        inspect.signature(fn).bind(*node.args, **{k.arg: k.value for k in node.keywords})


@pytest.mark.parametrize("block_id, mark, code", [b for b in ALL if b[1]], ids=lambda x: str(x)[:40])
def test_excerpt_compiles_against_the_real_names(block_id, mark, code):
    kind, _, rest = mark.partition(";")
    assert kind.strip() == "excerpt", f"{block_id}: unknown snippet marker {mark!r}"
    given = {g.strip() for g in rest.partition("given:")[2].split(",") if g.strip()}
    tree = ast.parse(code, filename=block_id)
    assert undefined_names(tree) <= given, f"{block_id}: undefined {undefined_names(tree) - given}"
    check_calls(tree, imported(tree))


def test_the_excerpt_checks_catch_what_they_are_for():
    """The checks themselves: an undefined name, and a call its function does not accept."""
    assert undefined_names(ast.parse("x = f(y)\nfor i in x: print(i)\n")) == {"f", "y"}
    tree = ast.parse("from gramr2_cli import recipe\nrecipe.load(None, [], 1, 2)\n")
    with pytest.raises(TypeError):
        check_calls(tree, imported(tree))
    check_calls(*(lambda t: (t, imported(t)))(ast.parse("from gramr2_cli import recipe\nrecipe.load(None, [])\n")))
