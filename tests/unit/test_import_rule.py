"""The import rule of the data core (issue 12): records, shards, formats, config, prompts, models and errors
import no stage, engine, trainer, server, RLHF or judging module, nor the recipe/CLI layers above them."""

import subprocess
import sys

import pytest

CORE = ("records", "shards", "formats", "config", "prompts", "models", "errors")
ABOVE = ("gramr2_cli.stages", "gramr2_cli.engines", "gramr2_cli.train", "gramr2_cli.serve", "gramr2_cli.rlhf",
         "gramr2_cli.judge", "gramr2_cli.recipe", "gramr2_cli.commands", "gramr2_cli.cli")


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
    assert [m for m in mods if m.startswith(ABOVE)] == []


def test_the_check_sees_an_upward_import():
    """The same probe on a module above the core does list what it pulls in (the test above can fail)."""
    assert "gramr2_cli.stages.synth" in loaded_by("recipe")
