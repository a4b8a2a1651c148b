"""Trainer overhead: gramr2's trainer core (HF Trainer) vs a bare torch loop — tokens/s on the same model, the
same examples (built once by `train.objectives`), the same batch size, the same optimizer (fused AdamW + cosine).

    .venv/bin/python benchmarks/bench_trainer.py                      # embedded:smollm2-135m, 6 steps
    .venv/bin/python benchmarks/bench_trainer.py --model /tmp/tiny --steps 20

Writes benchmarks/results/trainer.json. Target: the trainer within 15% of the bare loop in steady state
(`steady_ratio` >= 0.85: tokens/s from the end of step 1 to the last step); `ratio` is end to end.
Both runs use GRAMR2_THREADS (default 1) threads; on a shared CPU repeat it and read the median.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from transformers import TrainerCallback

from gramr2_cli import models, prompts, recipe, records
from gramr2_cli.train import core, objectives

RESULTS = Path(__file__).parent / "results" / "trainer.json"


def make_pairs(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x, y = round(rng.uniform(0, 10), 2), round(rng.uniform(0, 10), 2)
        hi, lo = max(x, y), min(x, y)
        label = rng.choice("AB")
        good, bad = f"The larger number is {hi}.", f"The larger number is {lo}."
        a, b = (good, bad) if label == "A" else (bad, good)
        rat = prompts.format_rationale(f"A says {a.split()[-1]} B says {b.split()[-1]}", f"{hi} > {lo}",
                                       f"Response {label} is better.")
        out.append(records.new_pair(f"Which is larger, {x} or {y}?", a, b, label, rat))
    return out


def bare_loop(model_path: str, rows: list[dict], steps: int, batch: int, lr: float, pad_id: int, seed: int) -> dict:
    """The reference: a plain torch loop over the same rows (no Trainer, no callbacks, no logging)."""
    from transformers import AutoModelForCausalLM, get_cosine_schedule_with_warmup

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, fused=True)
    sched = get_cosine_schedule_with_warmup(opt, 0, steps)
    collate = objectives.Collator(pad_id)
    g = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(rows, batch_size=batch, shuffle=True, collate_fn=collate, generator=g)
    tokens, done, losses, marks = 0, 0, [], []
    t0 = time.perf_counter()
    while done < steps:
        for b in loader:
            loss = model(**b).loss
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            tokens += int(b["attention_mask"].sum())
            losses.append(loss.item())
            marks.append((time.perf_counter(), tokens))
            done += 1
            if done == steps:
                break
    secs = time.perf_counter() - t0
    return {"tokens": tokens, "seconds": round(secs, 3), "tokens_per_second": round(tokens / secs, 2),
            "steady_tokens_per_second": steady(marks), "first_loss": losses[0], "final_loss": losses[-1]}


def steady(marks: list[tuple[float, int]]) -> float | None:
    """tokens/s from the end of step 1 to the end of the last step (no setup, no first-step warm-up)."""
    if len(marks) < 2:
        return None
    (t1, n1), (t2, n2) = marks[0], marks[-1]
    return round((n2 - n1) / (t2 - t1), 2)


class StepClock(TrainerCallback):
    """Notes (time, tokens seen) at each step end, as the bare loop does."""
    def __init__(self):
        self.marks: list[tuple[float, int]] = []

    def on_step_end(self, args, state, control, **kw):
        self.marks.append((time.perf_counter(), int(state.num_input_tokens_seen)))


def run_trainer(args, recs: list[dict]) -> dict:
    """The gramr2 trainer core on the same records (fresh output dir, no checkpoints during the timed run)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "pairs.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in recs))
        cfg = recipe.Config(model=args.model)
        for k, v in {"max_steps": args.steps, "batch_size": args.batch, "lr": args.lr, "warmup_ratio": 0.0,
                    "save_steps": 10 ** 6, "logging_steps": 1, "max_length": 1024}.items():
            setattr(cfg.train, k, v)
        clock = StepClock()
        s = core.train(cfg, [data], Path(tmp) / "out", stage="pretrain", callbacks=[clock])
    out = {k: s.metrics[k] for k in ("tokens_seen", "tokens_per_second", "first_loss", "final_loss")}
    return out | {"steady_tokens_per_second": steady(clock.marks)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded:smollm2-135m")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    threads = int(os.environ.get("GRAMR2_THREADS", "1"))
    torch.set_num_threads(threads)
    import numpy as np
    np.finfo(np.float32), np.finfo(np.float64)   # before FTZ, or numpy warns
    torch.set_flush_denormal(True)
    path = models.resolve(args.model)
    tok = models.load_tokenizer(path)
    recs = make_pairs(args.steps * args.batch)
    rows, _, _ = objectives.build_dataset(tok, recs, "reasoning", 1024)

    bares, trainers = [], []
    for rep in range(args.repeats):   # interleaved, so load from other processes hits both alike
        bares.append(bare_loop(path, rows, args.steps, args.batch, args.lr, tok.pad_token_id, seed=0))
        print(f"[{rep}] bare loop: {bares[-1]['tokens_per_second']} tok/s", file=sys.stderr)
        trainers.append(run_trainer(args, recs))
        print(f"[{rep}] gramr2 trainer: {trainers[-1]['tokens_per_second']} tok/s", file=sys.stderr)
    key = "steady_tokens_per_second" if args.steps > 1 else "tokens_per_second"
    bare = sorted(bares, key=lambda r: r[key])[len(bares) // 2]            # the median run
    trainer = sorted(trainers, key=lambda r: r[key])[len(trainers) // 2]
    ratio = trainer["tokens_per_second"] / bare["tokens_per_second"]
    steady_ratio = None
    if trainer["steady_tokens_per_second"] and bare["steady_tokens_per_second"]:
        steady_ratio = round(trainer["steady_tokens_per_second"] / bare["steady_tokens_per_second"], 3)
    result = {"model": args.model, "steps": args.steps, "batch_size": args.batch, "threads": threads,
              "examples": len(rows), "repeats": args.repeats, "load_average": os.getloadavg()[0],
              "bare_loop": bare, "gramr2_trainer": trainer,
              "all_tokens_per_second": {"bare_loop": [r["tokens_per_second"] for r in bares],
                                        "gramr2_trainer": [r["tokens_per_second"] for r in trainers],
                                        "bare_loop_steady": [r["steady_tokens_per_second"] for r in bares],
                                        "gramr2_trainer_steady": [r["steady_tokens_per_second"] for r in trainers]},
              "ratio": round(ratio, 3), "steady_ratio": steady_ratio,
              "target": "steady_ratio >= 0.85 (end-to-end `ratio` also counts one-time setup)",
              "meets_target": (steady_ratio or ratio) >= 0.85,
              "torch": torch.__version__, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
