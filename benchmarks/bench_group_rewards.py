"""Group rewards for GRPO: judge calls and wall time per group, G = 4, 8, 16, for each pairing (both orders).

    .venv/bin/python benchmarks/bench_group_rewards.py                 # tiny random Llama (built on the fly), hf
    .venv/bin/python benchmarks/bench_group_rewards.py --model embedded:smollm2-135m --gs 4 8 --groups 1

For each G and pairing (`group_rewards.PAIRINGS`) it scores `--groups` groups of G rollouts together (one
`score_groups` call, so the groups share engine batches, as a trainer's batch would):
- with a scripted judge (no model; P(A) from a hidden quality, with noise and a position bias, `scripted`): judge
  calls per group (exact) and the mean Spearman correlation between the rewards and the hidden quality over
  `--scripted-groups` groups (how much of the order each pairing recovers from a noisy judge);
- with the real `hf` engine (greedy, `--max-new-tokens` per judgment): wall time per group, and with
  `--verdict-only` also the forced-answer judging (one forward pass per call). With the tiny random model every
  rationale judgment is unparseable (so every reward is None, masked) and runs to max_new_tokens, which keeps the
  per-call cost fixed: the times compare the pairings' cost, not a model's skill.
Writes benchmarks/results/bench_group_rewards.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

from gramr2_cli import recipe
from gramr2_cli.core import models
from gramr2_cli.engines import close_all, load_engine
from gramr2_cli.judging import judge
from gramr2_cli.judging.group_rewards import PAIRINGS, GroupConfig, judge_compare, score_groups

RESULTS = Path(__file__).parent / "results" / "bench_group_rewards.json"


def rollouts(groups: int, g: int) -> tuple[list[str], list[list[str]], list[str], list[list[float]]]:
    """Prompts, G rollouts each, a reference each, and each rollout's hidden quality (a fixed permutation)."""
    rng = np.random.default_rng(0)
    prompts, rolls, refs, quality = [], [], [], []
    for r in range(groups):
        q = rng.permutation(g).astype(float)
        prompts.append(f"Which number is the largest? Prompt {r}.")
        rolls.append([f"The largest number is {int(7 * k + r) % 97}, as shown by step {k}." for k in range(g)])
        refs.append(f"The largest number is {r}.")
        quality.append(list(q))
    return prompts, rolls, refs, quality


def scripted(quality: list[list[float]], seed: int = 0):
    """A noisy, position-biased judge: P(shown A better) = σ(0.5 (q_a − q_b) + 0.3 + 0.8 z), z ~ N(0, 1) per call
    (the reference has quality (G−1)/2). Seeded: the same calls get the same answers."""
    rng = np.random.default_rng(seed)

    def compare(calls):
        out = []
        for r, a, b in calls:
            qa = quality[r][a] if a >= 0 else (len(quality[r]) - 1) / 2
            qb = quality[r][b] if b >= 0 else (len(quality[r]) - 1) / 2
            out.append(float(1 / (1 + np.exp(-(0.5 * (qa - qb) + 0.3 + 0.8 * rng.standard_normal())))))
        return out
    return compare


def spearman(x: list[float], y: list[float]) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="", help="model spec (default: a tiny random Llama)")
    ap.add_argument("--gs", type=int, nargs="+", default=[4, 8, 16], help="group sizes G")
    ap.add_argument("--groups", type=int, default=2, help="groups scored together per setting (engine timing)")
    ap.add_argument("--scripted-groups", type=int, default=200, help="groups for the scripted-judge Spearman")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--verdict-only", action="store_true", help="also time forced-answer judging")
    ap.add_argument("--out", type=Path, default=RESULTS, help="result JSON path")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("GRAMR2_THREADS", "1")))
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(models.build_tiny(Path(tmp) / "tiny"))
        label = args.model or "tiny random Llama (2 layers, hidden 128, SmolLM2 tokenizer)"
        cfg = recipe.load_recipe(None, ["generate.engine=hf"], model=model)
        engine = load_engine(cfg.model, cfg.generate, cfg.seed)
        modes = [False, True] if args.verdict_only else [False]
        judge_fns = {vo: (lambda pairs, vo=vo: judge.judge_pairs(engine, pairs, orders="ab", temperature=0.0,
                                                                 max_new_tokens=args.max_new_tokens,
                                                                 verdict_only=vo)) for vo in modes}
        judge_fns[False]([{"prompt": "warm", "response_a": "up", "response_b": "now"}])   # first forwards allocate
        rows = []
        for g in args.gs:
            prompts, rolls, refs, quality = rollouts(args.groups, g)
            *_, many = rollouts(args.scripted_groups, g)
            for pairing in PAIRINGS:
                gc = GroupConfig(pairing=pairing, orders="both", score="p_a")
                ideal = score_groups([g] * args.scripted_groups, scripted(many), gc)
                row = {"G": g, "pairing": pairing, "orders": "both", "groups": args.groups,
                       "judge_calls_per_group": ideal[0].judge_calls,
                       "spearman_scripted": round(float(np.mean([spearman(res.rewards, q) for res, q
                                                                  in zip(ideal, many)])), 3)}
                for vo in modes:
                    t0 = time.perf_counter()
                    got = score_groups([g] * args.groups, judge_compare(judge_fns[vo], prompts, rolls, refs), gc)
                    wall = time.perf_counter() - t0
                    key = "verdict_only" if vo else "rationale"
                    row[f"wall_s_per_group_{key}"] = round(wall / args.groups, 3)
                    row[f"failed_calls_per_group_{key}"] = sum(r.failed_calls for r in got) / args.groups
                    if [r.judge_calls for r in got] != [ideal[0].judge_calls] * args.groups:
                        raise SystemExit(f"judge calls differ between the engine and the scripted judge: {row}")
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
        close_all()
    out = {"benchmark": "group rewards: judge calls and wall time per group", "model": label, "engine": "hf",
           "max_new_tokens": args.max_new_tokens, "scripted_groups": args.scripted_groups, "threads": torch.get_num_threads(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
