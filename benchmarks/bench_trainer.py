"""Trainer speed on real mixed-length batches: gramr2's trainer core vs bare torch loops on the same batches.

    .venv/bin/python benchmarks/bench_trainer.py                      # embedded:smollm2-135m, 4 steps of 8
    .venv/bin/python benchmarks/bench_trainer.py --model /tmp/tiny --steps 10
    .venv/bin/python benchmarks/bench_trainer.py --baseline-src /tmp/old/src   # also time an older gramr2 tree

Data: `data synth` pairs (the demo's families, 164-230 tokens for SmolLM2), reasoning objective (Eq. 2), fp32
unless the CPU has native bf16 (`train.precision: auto`). Runs, interleaved so load from other processes hits all
alike (`--repeats` rounds, median reported):
- `bare_plain`: model(**padded batch with attention mask).loss — what the trainer did before (it ran at 0.98 of
  this loop, results/trainer.json of 2026-11-28);
- `bare_lean`: the same batches as the trainer gets now (`packing.target_loss`: no mask, logits at targets only);
- `gramr2_trainer`: `train.core.train` with its defaults;
- `baseline_trainer` (with --baseline-src): `gramr2 pretrain` from another source tree in a subprocess.
Tokens are non-padding tokens; steady tokens/s counts from the end of step 1 (no setup, no warm-up). The
roofline is `hardware.matmul_gflops` / 6·N, measured in this process before each round.
Writes benchmarks/results/trainer.json. Targets: trainer ≥ 0.85 × bare_lean (steady); trainer / bare_plain ≥ 2.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from transformers import TrainerCallback

from gramr2_cli import recipe
from gramr2_cli.core import hardware, models
from gramr2_cli.stages import synth
from gramr2_cli.train import core, objectives, packing

RESULTS = Path(__file__).parent / "results" / "trainer.json"


def make_pairs(n: int, seed: int = 0) -> list[dict]:
    """`n` labeled synthetic pairs from the demo's families (mixed lengths)."""
    return synth.generate(synth.SynthConfig(n=n), seed)["labeled"][:n]


def batches(rows: list[dict], steps: int, batch: int, seed: int) -> list[list[dict]]:
    """The trainer's order: a seeded shuffle, consecutive micro-batches (no length grouping)."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [[rows[order[(s * batch + j) % len(rows)]] for j in range(batch)] for s in range(steps)]


def bare_loop(model_path: str, plan: list[list[dict]], lr: float, pad_id: int, lean: bool, bf16: bool) -> dict:
    """A plain torch loop (fused AdamW, cosine, no Trainer): `lean` = the trainer's batches and loss now."""
    from transformers import AutoModelForCausalLM, get_cosine_schedule_with_warmup

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, fused=True)
    sched = get_cosine_schedule_with_warmup(opt, 0, len(plan))
    collate = objectives.Collator(pad_id)
    tokens, losses, marks = 0, [], []
    t0 = time.perf_counter()
    for rows in plan:
        b = collate(rows)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = packing.target_loss(model, b)[0] if lean else model(**b).loss
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(b["attention_mask"].sum())
        losses.append(loss.item())
        marks.append((time.perf_counter(), tokens))
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


def _settings(args) -> dict:
    return {"max_steps": args.steps, "batch_size": args.batch, "lr": args.lr, "warmup_ratio": 0.0,
            "save_steps": 10 ** 6, "logging_steps": 1, "max_length": 1024}


def run_trainer(args, data: Path) -> dict:
    """The gramr2 trainer core on the same records (fresh output dir, no checkpoints during the timed run)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = recipe.Config(model=args.model)
        for k, v in _settings(args).items():
            setattr(cfg.train, k, v)
        clock = StepClock()
        s = core.train(cfg, [data], Path(tmp) / "out", stage="pretrain", callbacks=[clock])
    keys = ("tokens_seen", "tokens_per_second", "first_loss", "final_loss", "precision", "matmul_gflops",
            "roofline_tokens_per_second", "roofline_fraction")
    return {k: s.metrics.get(k) for k in keys} | {"steady_tokens_per_second": steady(clock.marks)}


def run_baseline(args, data: Path) -> dict:
    """`gramr2 pretrain` from the source tree `args.baseline_src`, same data and settings (a subprocess)."""
    with tempfile.TemporaryDirectory() as tmp:
        sets = [x for k, v in _settings(args).items() for x in ("-s", f"train.{k}={v}")]
        env = {**os.environ, "PYTHONPATH": str(args.baseline_src)}
        cmd = [sys.executable, "-c", "from gramr2_cli.cli import main; main()", "pretrain", str(data),
               "-o", f"{tmp}/out", "--model", args.model, *sets]
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        m = json.loads(Path(tmp, "out", "training_summary.json").read_text())
    return {k: m.get(k) for k in ("tokens_seen", "tokens_per_second", "first_loss", "final_loss", "precision")}


def median(runs: list[dict], key: str) -> dict:
    return sorted(runs, key=lambda r: r.get(key) or r["tokens_per_second"])[len(runs) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded:smollm2-135m")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="a gramr2 source tree (the dir holding gramr2_cli/) to time as `baseline_trainer`")
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
    lens = sorted(len(r["input_ids"]) for r in rows)
    plan = batches(rows, args.steps, args.batch, seed=0)
    pad_share = 1 - sum(len(r["input_ids"]) for b in plan for r in b) / sum(
        len(b) * max(len(r["input_ids"]) for r in b) for b in plan)
    bf16 = hardware.auto_bf16(on_gpu=False)
    runs: dict[str, list[dict]] = {"bare_plain": [], "bare_lean": [], "gramr2_trainer": [], "baseline_trainer": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "pairs.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in recs))
        for rep in range(args.repeats):   # interleaved, so load from other processes hits every variant alike
            todo = [("bare_plain", lambda: bare_loop(path, plan, args.lr, tok.pad_token_id, False, bf16)),
                    ("gramr2_trainer", lambda: run_trainer(args, data)),
                    ("bare_lean", lambda: bare_loop(path, plan, args.lr, tok.pad_token_id, True, bf16))]
            if args.baseline_src:
                todo.append(("baseline_trainer", lambda: run_baseline(args, data)))
            for name, fn in todo if rep % 2 == 0 else todo[::-1]:
                runs[name].append(fn() | {"load_average": os.getloadavg()[0]})
                print(f"[{rep}] {name}: {runs[name][-1]['tokens_per_second']} tok/s "
                      f"(steady {runs[name][-1].get('steady_tokens_per_second')})", file=sys.stderr, flush=True)
    key = "steady_tokens_per_second" if args.steps > 1 else "tokens_per_second"
    med = {k: median(v, key) for k, v in runs.items() if v}
    tr = med["gramr2_trainer"]

    def ratio(a: str, b: str, k: str = key) -> float | None:
        x, y = med.get(a, {}).get(k), med.get(b, {}).get(k)
        return round(x / y, 3) if x and y else None

    ratios = {"trainer_over_bare_lean": ratio("gramr2_trainer", "bare_lean"),
              "trainer_over_bare_plain": ratio("gramr2_trainer", "bare_plain"),
              "bare_lean_over_bare_plain": ratio("bare_lean", "bare_plain"),
              "trainer_over_baseline_end_to_end": ratio("gramr2_trainer", "baseline_trainer", "tokens_per_second")}
    result = {"model": args.model, "steps": args.steps, "batch_size": args.batch, "threads": threads,
              "examples": len(rows), "example_tokens": {"min": lens[0], "max": lens[-1],
                                                        "mean": round(sum(lens) / len(lens), 1)},
              "padding_share_of_padded_batches": round(pad_share, 3), "precision": "bf16" if bf16 else "fp32",
              "cpu_native_bf16": hardware.cpu_native_bf16(), "repeats": args.repeats,
              "median": med, "runs": runs, "ratios": ratios,
              "roofline_fraction": tr.get("roofline_fraction"),
              "targets": {"trainer_over_bare_lean >= 0.85": ratios["trainer_over_bare_lean"],
                          "trainer_over_bare_plain >= 2": ratios["trainer_over_bare_plain"]},
              "caveat": "shared 2-core CPU under load from other processes: compare ratios within this run",
              "torch": torch.__version__, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("ratios", "roofline_fraction", "padding_share_of_padded_batches")},
                     indent=2))


if __name__ == "__main__":
    main()
