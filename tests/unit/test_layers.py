"""The layer table (issue 24 point 3), held against the real imports of every module under src/gramr2_cli/.

One row per package (or top-level module) of the tree, lowest first; a module imports only from rows below its
own. Inside a row, `None` means its modules import each other freely (one package, one job: the data core,
engines/, train/, commands/); otherwise the row lists its tiers, lowest first, and a module imports only lower
tiers of its own package: an import of its own tier (sideways) or a higher one fails. Imports under
`if TYPE_CHECKING:` are type hints, not dependencies, and are not counted; an import inside a function is.
This generalises test_import_rule.py (the data core imports nothing above it) to every layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gramr2_cli

ROOT = Path(gramr2_cli.__file__).parent

# (row, tiers or None), lowest first. Names are relative to gramr2_cli; "" is the package itself (`__version__`
# and the public API, which imports lazily, on attribute access). A package's own __init__ sits below its tiers.
LAYERS: list[tuple[str, list[tuple[str, ...]] | None]] = [
    ("", None),
    ("core", None),                  # the data core: records, shards, formats, config, prompts, models
    ("engines", None),               # one protocol; hf, vllm, and vllm over HTTP
    ("judging", [("truncation",),    # prompts that fit the context
                 ("judge",),         # prompts → verdicts → judgments
                 ("selection",),     # knockout, tournament, … over a compare function
                 ("rank", "group_rewards", "probes", "metrics", "rewardbench2")]),    # over judgments
    ("reports", [("plots", "benchmark_tables", "demo_summary")]),
    ("runner", None),                # the stage skeleton: output, resume, engines, batch loop
    ("server", [("serve_requests", "serve_batching"), ("serve",)]),
    ("train", None),                 # the one trainer core and its objectives
    ("stages", [("synth_families",),                               # a stage's parts
                ("augment", "data_import", "evaluate_lists", "filter", "probe", "prove", "rank_list",
                 "rank_pairs", "self_label", "synth", "training"),
                ("evaluate", "plan", "self_train")]),              # composed: they run or reuse the stages below
    ("recipe", None),                # every stage's section in one Config
    ("rlhf", None),                  # TRL / verl / OpenRLHF hooks: a local model through the recipe, or a server
    ("commands", None),
    ("cli", None),
]


def row_of(mod: str) -> int:
    found = [i for i, (name, _) in enumerate(LAYERS) if mod == name or (name and mod.startswith(name + "."))]
    assert len(found) == 1, f"module {mod!r} is in {len(found)} rows of the table; put it in exactly one"
    return found[0]


def layer_of(mod: str) -> tuple[int, int]:
    """(row, tier) of `mod`; tier 0 is a package's own __init__ (and every module of a row without tiers)."""
    row = row_of(mod)
    name, tiers = LAYERS[row]
    if tiers is None or mod == name:
        return row, 0
    short = mod.removeprefix(f"{name}.").split(".")[0]
    found = [t for t, names in enumerate(tiers, 1) if short in names]
    assert len(found) == 1, f"module {mod!r} is in {len(found)} tiers of {name}/; put it in exactly one"
    return row, found[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(source: str, mod: str, is_package: bool) -> set[str]:
    """The gramr2_cli modules `source` imports (relative to gramr2_cli), type-checking-only imports left out."""
    pkg = mod if is_package else mod.rpartition(".")[0]
    found: set[str] = set()

    def target(node: ast.ImportFrom) -> str:
        if not node.level:
            return (node.module or "").removeprefix("gramr2_cli").lstrip(".") if (node.module or "").startswith(
                "gramr2_cli") else "\0"
        base = pkg.split(".") if pkg else []
        base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
        return ".".join([*base, *([node.module] if node.module else [])])

    def walk(node: ast.AST) -> None:
        for ch in ast.iter_child_nodes(node):
            if isinstance(ch, ast.If) and "TYPE_CHECKING" in ast.unparse(ch.test):
                continue
            if isinstance(ch, ast.ImportFrom):
                base = target(ch)
                if base != "\0":
                    for a in ch.names:
                        sub = f"{base}.{a.name}" if base else a.name
                        found.add(sub if _is_module(sub) else base)
            elif isinstance(ch, ast.Import):
                found.update(a.name.removeprefix("gramr2_cli").lstrip(".") for a in ch.names
                             if a.name.split(".")[0] == "gramr2_cli")
            walk(ch)

    walk(ast.parse(source))
    found.discard(mod)
    return found


def _is_module(name: str) -> bool:
    p = ROOT.joinpath(*name.split("."))
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def violations(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """One line per import that goes up a row or a tier, or sideways inside a tiered package."""
    out = []
    for mod, (src, is_pkg) in sorted(sources.items()):
        (row, tier), who = layer_of(mod), mod or "gramr2_cli"
        for dep in sorted(imports_of(src, mod, is_pkg)):
            dep_row, dep_tier = layer_of(dep)
            if dep_row > row:
                out.append(f"{who} ({LAYERS[row][0] or 'gramr2_cli'}) imports {dep} from the higher layer "
                           f"{LAYERS[dep_row][0]}")
            elif dep_row == row and LAYERS[row][1] is not None and dep_tier > tier:
                out.append(f"{who} imports {dep} from a higher layer of {LAYERS[row][0]}/")
            elif dep_row == row and LAYERS[row][1] is not None and dep_tier == tier and tier:
                out.append(f"{who} imports {dep} sideways (the same tier of {LAYERS[row][0]}/)")
    return out


def real_sources() -> dict[str, tuple[str, bool]]:
    return {module_name(p): (p.read_text(encoding="utf-8"), p.name == "__init__.py") for p in ROOT.rglob("*.py")}


def test_every_module_is_in_the_table():
    for mod in real_sources():
        layer_of(mod)


def test_the_table_names_only_real_modules():
    """A row or tier naming a module that is not there (moved, renamed) fails, so the table stays the tree."""
    mods = set(real_sources())
    named = {f"{row}.{m}" if row else m for row, tiers in LAYERS for tier in (tiers or []) for m in tier}
    assert sorted(named - mods) == [] and sorted({row for row, _ in LAYERS} - mods) == []


def test_no_import_goes_up_or_sideways():
    assert violations(real_sources()) == []


@pytest.mark.parametrize("module, planted, why", [
    ("core.records", "from ..stages import self_label\n", "higher layer"),           # the data core upward
    ("core.formats.importers", "from ...engines import encode\n", "higher layer"),   # ... from a subpackage
    ("engines.hf", "from ..judging import judge\n", "higher layer"),                 # engines → judging
    ("judging.judge", "from .. import runner\n", "higher layer"),                    # judging → runner
    ("judging.truncation", "from .judge import Settings\n", "higher layer"),         # up a tier of judging/
    ("server.serve_requests", "from .serve import ServeConfig\n", "higher layer"),   # up a tier of server/
    ("stages.probe", "from .evaluate import metrics\n", "higher layer"),             # stage → composed stage
    ("stages.rank_pairs", "from .self_label import precision\n", "sideways"),         # stage → stage
    ("judging.group_rewards", "def f():\n    from .metrics import benchmarks\n", "sideways"),  # lazy counts
    ("reports.plots", "from .demo_summary import STEPS\n", "sideways"),               # report → report
])
def test_a_planted_import_fails(module, planted, why):
    sources = real_sources()
    src, is_pkg = sources[module]
    sources[module] = (src + "\n" + planted, is_pkg)
    found = violations(sources)
    assert len(found) == 1 and why in found[0], found


def test_type_checking_imports_are_not_dependencies():
    src = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..recipe import Config\n"
    assert imports_of(src, "stages.filter", False) == set()
    assert imports_of("from ..recipe import Config\n", "stages.filter", False) == {"recipe"}


def test_no_module_re_exports_another():
    """A module that imports names only to pass them on (`# noqa: F401`) hides where they live: `shards` no longer
    re-exports `readers`, nor `plan` `plan_cost`; callers import the real home."""
    found = {str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if "noqa: F401" in p.read_text(encoding="utf-8")}
    assert found == set()
