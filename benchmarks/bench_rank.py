"""Best-of-n cost: the paper's knockout (n−1 comparisons) vs round-robin all pairs (n(n−1)/2), n = 4, 8, 16.

    .venv/bin/python benchmarks/bench_rank.py                          # a tiny random Llama (built on the fly)
    .venv/bin/python benchmarks/bench_rank.py --model embedded:smollm2-135m --ns 4 8 --records 2

Each setting runs `stages.rank_list.run` (hf engine, greedy, both orders, `--max-new-tokens` forced tokens per
judgment) on `--records` prompts with n candidates each, and reports comparisons, judge calls (prompts sent to the
engine), engine rounds (batched calls) and wall time. With the tiny random model every verdict is unparseable,
which changes no count and keeps the generated length fixed (each judgment runs to max_new_tokens), so the times
compare the algorithms' cost, not a model's skill. Writes benchmarks/results/bench_rank.json.
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

import torch

from gramr2_cli import recipe
from gramr2_cli.core import models
from gramr2_cli.engines import close_all, load_engine
from gramr2_cli.stages import rank_list

RESULTS = Path(__file__).parent / "results" / "bench_rank.json"


def candidates_file(path: Path, records: int, n: int) -> Path:
    recs = [{"prompt": f"Which number is the largest? Prompt {r}.",
             "candidates": [f"The largest number is {(7 * k + r) % 97}." for k in range(n)]} for r in range(records)]
    path.write_text("".join(json.dumps(x) + "\n" for x in recs))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="", help="model spec (default: a tiny random Llama)")
    ap.add_argument("--ns", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--records", type=int, default=2, help="prompts per setting")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--methods", nargs="+", default=["knockout", "round_robin"])
    ap.add_argument("--out", type=Path, default=RESULTS, help="result JSON path")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("GRAMR2_THREADS", "1")))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or str(models.build_tiny(tmp / "tiny"))
        label = args.model or "tiny random Llama (2 layers, hidden 128, SmolLM2 tokenizer)"
        base = ["generate.engine=hf", f"generate.max_new_tokens={args.max_new_tokens}", "rank.orders=both"]
        cfg0 = recipe.load_recipe(None, base, model=model)
        engine = load_engine(cfg0.model, cfg0.generate, cfg0.seed)
        # warm-up: first forward passes allocate
        rank_list.run(recipe.load_recipe(None, base + ["rank.method=knockout"], model=model),
                      [candidates_file(tmp / "w.jsonl", 1, 2)], tmp / "warm", engine=engine, progress=False)
        rows = []
        for n in args.ns:
            data = candidates_file(tmp / f"c{n}.jsonl", args.records, n)
            for method in args.methods:
                cfg = recipe.load_recipe(None, base + [f"rank.method={method}"], model=model)
                t0 = time.perf_counter()
                s = rank_list.run(cfg, [data], tmp / f"{method}-{n}", engine=engine, progress=False)
                wall = time.perf_counter() - t0
                row = {"n": n, "method": method, "records": args.records,
                       "comparisons_per_record": s.metrics["comparisons"] / args.records,
                       "judge_calls_per_record": s.metrics["judge_calls"] / args.records,
                       "engine_rounds": s.metrics["engine_rounds"], "wall_s": round(wall, 2),
                       "wall_s_per_record": round(wall / args.records, 2)}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
        close_all()
    for n in args.ns:
        by = {r["method"]: r for r in rows if r["n"] == n}
        if {"knockout", "round_robin"} <= set(by):
            by["knockout"]["speedup_vs_round_robin"] = round(by["round_robin"]["wall_s"] / by["knockout"]["wall_s"], 2)
    out = {"benchmark": "best-of-n: knockout vs round-robin", "model": label, "engine": "hf", "orders": "both",
           "max_new_tokens": args.max_new_tokens, "threads": torch.get_num_threads(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
