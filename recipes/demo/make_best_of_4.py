"""Write recipes/demo/best_of_4.jsonl: the lists `make demo` ranks with `gramr2 rank list` (best-of-4).

Each list is one held-out problem (a word from the synth `test` pool, never in any training split) of a family the
demo trains on, with its right answer and three distinct wrong ones of the kinds the family's own slips make,
shuffled (seeded); `meta.best` is the right one's index, checked by the family's code checker. A random pick is
right 1 time in 4. Ours (paper: not stated).

    python recipes/demo/make_best_of_4.py            # rewrites the file (deterministic)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from gramr2_cli.stages.synth_families import FAMILIES, WORD_POOL

FAMILY_MIX = ("uppercase",)          # the demo's family with 4 distinct answers (decimal_compare has 2)
LISTS = 24
OUT = Path(__file__).with_name("best_of_4.jsonl")


def _swaps(s: str) -> list[str]:
    """Every string `s` with one adjacent pair of different characters swapped (the families' transposition slip)."""
    return sorted({s[:i] + s[i + 1] + s[i] + s[i + 2:] for i in range(len(s) - 1) if s[i] != s[i + 1]})


def wrong_answers(family: str, word: str) -> list[str]:
    """The family's slips on `word`, as its responses write them (synth_families.make_upper/_last_letter/_reverse)."""
    if family == "uppercase":
        up = word.upper()
        return sorted({up[:i] + word[i] + up[i + 1:] for i in range(1, len(word))} | set(_swaps(up)))
    if family == "last_letter":
        return [f"The last letter is {c}." for c in sorted(set(word) - {word[-1]})]
    return _swaps(word[::-1])                                   # reverse_word


def one_list(family: str, word: str, rng: random.Random) -> dict:
    """One problem on `word` with its right answer and 3 distinct wrong ones, shuffled; `meta.best` its index."""
    prompt, right = {"uppercase": (f"Write '{word}' in capital letters.", word.upper()),
                     "last_letter": (f"What is the last letter of '{word}'?", f"The last letter is {word[-1]}."),
                     "reverse_word": (f"Write '{word}' backwards.", word[::-1])}[family]
    cands = [right, *rng.sample(wrong_answers(family, word), 3)]
    rng.shuffle(cands)
    check = FAMILIES[family].check
    assert [check(prompt, c) for c in cands].count(True) == 1, (prompt, cands)
    return {"prompt": prompt, "candidates": cands, "meta": {"best": cands.index(right), "family": family}}


def main() -> None:
    rng = random.Random("gramr2-demo-best-of-4")
    words = rng.sample([w for w in WORD_POOL["test"] if len(set(w)) >= 4 and len(w) <= 7], LISTS)
    out = [one_list(FAMILY_MIX[i % len(FAMILY_MIX)], w, rng) for i, w in enumerate(words)]
    OUT.write_text("".join(json.dumps(r) + "\n" for r in out))
    print(f"{OUT}: {len(out)} lists")


if __name__ == "__main__":
    main()
