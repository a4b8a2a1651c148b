"""Small labeled pair sets for the training tests (built inline so they do not depend on `data synth`)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from gramr2_cli.core import prompts, records


def make_pairs(n: int, seed: int = 0, rationale_every: int = 1) -> list[dict]:
    """`n` decimal-comparison pairs with gold labels; every `rationale_every`-th has a rationale (others None)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x, y = round(rng.uniform(0, 10), 1), round(rng.uniform(0, 10), 1)
        while y == x:
            y = round(rng.uniform(0, 10), 1)
        hi, lo = max(x, y), min(x, y)
        good, bad = f"The larger number is {hi}.", f"The larger number is {lo}."
        label = rng.choice("AB")
        a, b = (good, bad) if label == "A" else (bad, good)
        rationale = prompts.format_rationale(f"A says {a.split()[-1]} B says {b.split()[-1]}",
                                             f"{hi} > {lo}", f"Response {label} is better.")
        out.append(records.new_pair(f"Which is larger, {x} or {y}?", a, b, label,
                                    rationale if i % rationale_every == 0 else None, source="test"))
    return out


def write_pairs(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path
