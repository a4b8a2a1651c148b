"""Issue 17 item 12: the example blocks of docs/synth.md run as written, one after another, in a fresh directory
(the third used to fail on the first's output; `| head -1` used to exit 1 on the closed pipe)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_synth_md_examples_run_in_order(tmp_path):
    block = re.search(r"```\n(.*?)```", (REPO / "docs/synth.md").read_text(), re.S).group(1)
    assert block.count("gramr2 data synth") == 4
    (tmp_path / "recipes").symlink_to(REPO / "recipes")
    script = f'set -euo pipefail\ngramr2() {{ "{sys.executable}" -m gramr2_cli.cli "$@"; }}\n{block}'
    r = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith('{"id": ') and len(r.stdout.splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["synth", "synth-hard", "synth-recipe"]
