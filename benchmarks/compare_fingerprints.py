"""Compare two `pipeline_fingerprint.sh` output directories record by record.

Usage: python benchmarks/compare_fingerprints.py OLD_DIR NEW_DIR
Every part file under OLD_DIR must exist under NEW_DIR with the same records once each run's own directory path is
replaced by DIR and `recipe_hash` is dropped (the recipe names the run directory, so its hash differs by design).
Model weights and report.md are compared byte for byte (after the same path replacement). Exit 1 on a difference.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k != "recipe_hash"}
    if isinstance(obj, list):
        return [_strip(x) for x in obj]
    return obj


def _records(path: Path, root: Path) -> list:
    text = path.read_text(encoding="utf-8").replace(str(root), "DIR")
    return [_strip(json.loads(line)) for line in text.splitlines() if line.strip()]


def main(old: Path, new: Path) -> int:
    old, new = old.resolve(), new.resolve()
    bad = 0
    files = sorted(p.relative_to(old) for p in old.rglob("*")
                   if p.suffix in (".jsonl", ".safetensors") or p.name == "report.md")
    for rel in files:
        a, b = old / rel, new / rel
        if not b.exists():
            print(f"MISSING  {rel}")
            bad += 1
        elif rel.suffix == ".jsonl":
            same = _records(a, old) == _records(b, new)
            print(f"{'same' if same else 'DIFFERENT':9}{rel}")
            bad += not same
        else:
            ha = hashlib.sha256(a.read_bytes().replace(str(old).encode(), b"DIR")).hexdigest()
            hb = hashlib.sha256(b.read_bytes().replace(str(new).encode(), b"DIR")).hexdigest()
            print(f"{'same' if ha == hb else 'DIFFERENT':9}{rel}")
            bad += ha != hb
    print(f"{len(files)} files compared, {bad} different")
    return 1 if bad or not files else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
