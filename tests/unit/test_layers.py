"""The layer table (issue 24 point 5), held against the real imports of every module under src/gramr2_cli/.

A module may import modules of lower layers. Inside a layer it may import only when the layer is one package
(`intra`: the data core, engines/, train/, commands/) or the edge is listed in `SIDEWAYS` with its reason.
Anything else, an upward or a sideways import, fails. Imports under `if TYPE_CHECKING:` are type hints, not
dependencies, and are not counted; an import inside a function is. This generalises test_import_rule.py (the
data core imports nothing above it) to every layer of the current flat layout.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

import gramr2_cli

ROOT = Path(gramr2_cli.__file__).parent

# (layer, intra-layer imports allowed, module patterns), lowest first. Names are relative to gramr2_cli
# ("" is the package itself: its API imports lazily, on attribute access).
LAYERS: list[tuple[str, bool, tuple[str, ...]]] = [
    ("data core", True, ("", "errors", "records", "config", "readers", "outdir", "shards", "formats", "formats.*",
                         "prompts", "rendering", "models", "progress", "hardware", "plan_cost", "rewardbench2",
                         "plots", "flags", "datatools", "outguard")),
    ("engines", True, ("engines", "engines.*")),
    ("judging: prompts that fit", False, ("truncation",)),
    ("judging", False, ("judge",)),
    ("judging: selection algorithms", False, ("selection",)),
    ("judging: over judgments", False, ("group_rewards", "probes", "metrics")),
    ("reports", False, ("demo_summary",)),
    ("runner", False, ("runner",)),
    ("reward server: requests", False, ("serve_requests", "serve_batching")),
    ("reward server", False, ("serve",)),
    ("train", True, ("train", "train.*")),
    ("stage parts", False, ("stages", "stages.rank", "stages.benchmark_tables", "stages.synth_families")),
    ("stages", False, ("augment", "stages.data_import", "stages.evaluate_lists", "stages.filter", "stages.probe",
                       "stages.prove", "stages.rank_list", "stages.rank_pairs", "stages.self_label", "stages.synth",
                       "stages.training")),
    ("composed stages", False, ("stages.evaluate", "stages.self_train")),
    ("recipe", False, ("recipe",)),
    ("rlhf hooks", False, ("rlhf",)),
    ("command helpers", False, ("plan",)),
    ("commands", True, ("commands", "commands.*")),
    ("cli", False, ("cli",)),
]

# sideways imports inside a layer that are by design
SIDEWAYS: dict[tuple[str, str], str] = {}   # (importer, imported): why; empty: no sideways import is by design


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(mod: str) -> int:
    found = [i for i, (_, _, pats) in enumerate(LAYERS) if any(fnmatch.fnmatchcase(mod, p) for p in pats)]
    assert len(found) == 1, f"module {mod!r} is in {len(found)} layers of the table; put it in exactly one"
    return found[0]


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
    """One line per import that goes up a layer, or sideways where the table does not allow it."""
    out = []
    for mod, (src, is_pkg) in sorted(sources.items()):
        me = layer_of(mod)
        for dep in sorted(imports_of(src, mod, is_pkg)):
            other = layer_of(dep)
            name, intra, _ = LAYERS[me]
            if other > me:
                out.append(f"{mod or 'gramr2_cli'} ({name}) imports {dep} from the higher layer {LAYERS[other][0]}")
            elif other == me and not intra and (mod, dep) not in SIDEWAYS:
                out.append(f"{mod or 'gramr2_cli'} imports {dep} sideways (layer {name})")
    return out


def real_sources() -> dict[str, tuple[str, bool]]:
    return {module_name(p): (p.read_text(encoding="utf-8"), p.name == "__init__.py") for p in ROOT.rglob("*.py")}


def test_every_module_is_in_the_table():
    for mod in real_sources():
        layer_of(mod)


def test_no_import_goes_up_or_sideways():
    assert violations(real_sources()) == []


@pytest.mark.parametrize("module, planted, why", [
    ("records", "from .stages import self_label\n", "higher layer"),                 # the data core upward
    ("judge", "from . import runner\n", "higher layer"),                            # judging → runner
    ("stages.probe", "from .evaluate import metrics\n", "higher layer"),            # stage → composed stage
    ("stages.rank_pairs", "from .self_label import precision\n", "sideways"),      # stage → stage
    ("group_rewards", "def f():\n    from .metrics import benchmarks\n", "sideways"),   # lazy import counts
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


# re-export shims still there, with why: shards.py is edited on the reliability branch this round
SHIMS = {"shards.py": "re-exports readers (read, read_all, ...); every stage reads through shards"}


def test_no_module_re_exports_another():
    """A module that imports names only to pass them on (`# noqa: F401`) hides where they live; plan no longer
    re-exports plan_cost."""
    found = {str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if "noqa: F401" in p.read_text(encoding="utf-8")}
    assert found == set(SHIMS)
