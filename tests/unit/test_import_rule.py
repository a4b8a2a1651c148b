"""The import rule of the data core (issue 12): the modules of `core/` (records, shards, formats, config, prompts,
models, errors, ...) import nothing outside `core/`: no stage, engine, trainer, server, RLHF or judging module, nor
the recipe/CLI layers above them."""

import subprocess
import sys

import pytest

CORE = ("core.records", "core.shards", "core.formats", "core.config", "core.prompts", "core.models", "core.errors",
        "core.datatools", "core.plan_cost")


def loaded_by(module: str) -> list[str]:
    """The gramr2_cli modules a fresh interpreter holds after `import gramr2_cli.<module>`."""
    code = (f"import sys, gramr2_cli.{module}\n"
            "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('gramr2_cli'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return out.stdout.split()


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_nothing_above_the_core(module):
    mods = loaded_by(module)
    assert f"gramr2_cli.{module}" in mods
    assert [m for m in mods if m != "gramr2_cli" and not m.startswith("gramr2_cli.core")] == []


def test_the_check_sees_an_upward_import():
    """The same probe on a module above the core does list what it pulls in (the test above can fail)."""
    assert "gramr2_cli.stages.synth" in loaded_by("recipe")
