"""A real GRPO run with a gramr2 reward model: does the policy's reward rise? (issue 26 item 4)

    .venv/bin/python benchmarks/rlhf_run.py --rm demo/rm --prompts demo/synth/unlabeled --steps 40
    .venv/bin/python benchmarks/rlhf_run.py --rm http://127.0.0.1:8000 --asynchronous ...   # a `gramr2 serve`
    .venv/bin/python benchmarks/rlhf_run.py --tiny --steps 2          # smoke check: tiny random policy and judge

`trl.GRPOTrainer` trains `--policy` (default the embedded SmolLM2-135M, `embedded:smollm2-135m`) for `--steps`
steps on the distinct prompts of a `gramr2 data synth` shard (`--prompts`), with `make_trl_reward` on `--rm` (a
model directory, loaded in this process with the hf engine, or a server URL) as the only reward: `--pairing`
(default round-robin: each prompt's G rollouts against each other, both orders). Per step it records the reward
mean and std TRL logs, the judge calls, failed calls and masked rewards (with the masked and scored rollouts' mean
length), the judging seconds and the step's wall time. Writes `--out` (JSON, default
benchmarks/results/rlhf_run.json) and `--plot` (default benchmarks/results/rlhf.png): reward mean per step
(± std) and seconds per step. With `--tiny` the policy and the judge are a tiny random Llama (verdict-only
judging: a random judge writes no verdict), so the numbers say nothing about learning; it checks the script.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from gramr2_cli import recipe
from gramr2_cli.core import hardware, models, outguard, readers
from gramr2_cli.core.errors import GramrError
from gramr2_cli.rlhf import make_trl_reward

RESULTS = Path(__file__).parent / "results"
KEYS = {"reward_mean": "rewards/gramr2_reward/mean", "reward_std": "rewards/gramr2_reward/std",
        "judge_calls": "gramr2/judge_calls", "failed_calls": "gramr2/failed_calls", "masked": "gramr2/masked",
        "masked_chars": "gramr2/masked_chars", "scored_chars": "gramr2/scored_chars",
        "judge_seconds": "gramr2/seconds", "completion_length": "completions/mean_length"}


def distinct_prompts(path: Path, limit: int, reference: str = "none") -> tuple[list[str], list[str] | None]:
    """The first `limit` distinct prompts of a shard (file or directory), and with `reference` right|wrong each
    prompt's gold-labeled right or wrong response (the first record of the prompt; None with `none`). Raises
    GramrError when the shard has no prompt, or a record lacks the gold label a reference needs."""
    seen: dict[str, str] = {}
    for rec in readers.read([path]):
        if rec.get("prompt") and rec["prompt"] not in seen:
            ref = ""
            if reference != "none":
                gold = (rec.get("meta") or {}).get("gold_label") or rec.get("label")
                if gold not in ("A", "B"):
                    raise GramrError(f"{path}: record {rec.get('id')!r} has no gold label A/B for --reference",
                                     hint="use a labeled or test split of 'gramr2 data synth'")
                right = gold if reference == "right" else "B" if gold == "A" else "A"
                ref = rec["response_a" if right == "A" else "response_b"]
            seen[rec["prompt"]] = ref
        if len(seen) >= limit:
            break
    if not seen:
        raise GramrError(f"{path}: no records with a prompt", hint="make one with 'gramr2 data synth -o out/synth'")
    return list(seen), (list(seen.values()) if reference != "none" else None)


def step_log(trainer_state, step_seconds: dict[int, float]) -> list[dict]:
    """One row per step from TRL's log history (logging_steps=1)."""
    rows = []
    for h in trainer_state.log_history:
        if KEYS["reward_mean"] not in h:
            continue
        row = {"step": h["step"], **{k: h.get(v) for k, v in KEYS.items()}}
        row["step_seconds"] = step_seconds.get(h["step"])
        rows.append(row)
    return rows


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    mean = [r["reward_mean"] for r in rows]
    std = [r["reward_std"] or 0.0 for r in rows]
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=[2, 1])
    ax.plot(steps, mean, marker="o", ms=3, label="reward mean (per step)")
    ax.fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.2,
                    label="± std over the step's rollouts")
    ax.set_ylabel("gramr2 reward")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    bx.plot(steps, [r["step_seconds"] for r in rows], marker=".", label="step wall time")
    bx.plot(steps, [r["judge_seconds"] for r in rows], marker=".", label="of which judging")
    bx.set_xlabel("GRPO step")
    bx.set_ylabel("seconds")
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rm", help="reward model directory or a gramr2 serve URL")
    ap.add_argument("--prompts", type=Path, help="a `gramr2 data synth` shard (file or directory)")
    ap.add_argument("--policy", default="embedded:smollm2-135m")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--num-generations", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8, help="completions per step (a multiple of --num-generations)")
    ap.add_argument("--max-completion-length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--pairing", default="round_robin",
                    help="round_robin | circular | knockout: rollouts against each other (zero-sum: a group's mean "
                         "reward is 0.5 by construction); reference: each rollout against --reference")
    ap.add_argument("--reference", choices=("none", "right", "wrong"), default="none",
                    help="with --pairing reference: each prompt's gold right (or wrong) response from --prompts "
                         "is the reference, so the reward is absolute and its mean can move")
    ap.add_argument("--set", "-s", action="append", default=[], help="recipe override for the reward, k=v")
    ap.add_argument("--asynchronous", action="store_true", help="the async reward (one request per group)")
    ap.add_argument("--max-prompts", type=int, default=256)
    ap.add_argument("--tiny", action="store_true", help="tiny random policy and judge (checks the script)")
    ap.add_argument("--out", type=Path, default=RESULTS / "rlhf_run.json")
    ap.add_argument("--plot", type=Path, default=RESULTS / "rlhf.png")
    a = ap.parse_args()

    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    torch.set_num_threads(int(os.environ.get("GRAMR2_THREADS", "0")) or torch.get_num_threads())

    work = Path(tempfile.mkdtemp(prefix="gramr2-rlhf-"))
    sets = [f"serve.pairing={a.pairing}", *a.set]
    if a.tiny:
        tiny = str(models.build_tiny(work / "tiny", seed=0))
        policy, rm, sets = tiny, tiny, [*sets, "generate.verdict_only=true"]
    else:
        if not a.rm:
            sys.exit("error: --rm is required (a reward model directory or a gramr2 serve URL), or --tiny")
        policy, rm = models.resolve(a.policy), a.rm
        if not rm.startswith(("http://", "https://")):
            models.resolve(rm)                    # a missing RM fails now, not after the policy's first rollouts
            trained = models.trained_prompt(rm)
            if trained and not any(s.startswith("prompt=") for s in sets):
                sets.append(f"prompt={trained}")  # judge through the prompt the RM was trained on
    if (a.pairing == "reference") != (a.reference != "none"):
        sys.exit("error: --pairing reference and --reference right|wrong go together")
    for written in (a.out, a.plot):        # the results may not land on (or in) the prompts or the RM
        outguard.check_not_input(written, [p for p in (a.prompts, a.rm) if p and not str(p).startswith("http")])
    references = None
    if a.prompts:
        prompts, references = distinct_prompts(a.prompts, a.max_prompts, a.reference)
    elif a.tiny:
        prompts = [f"What is {i} + {i + 1}?" for i in range(16)]
        references = [str(2 * i + 1) for i in range(16)] if a.reference != "none" else None
    else:
        sys.exit("error: --prompts is required (e.g. the unlabeled split of 'gramr2 data synth')")

    url = rm.startswith(("http://", "https://"))
    cfg = None if url else recipe.load_recipe(None, sets + ["generate.engine=hf"], model=rm)
    reward = make_trl_reward(rm, cfg=cfg, num_generations=a.num_generations, asynchronous=a.asynchronous)
    step_seconds: dict[int, float] = {}

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            step_seconds[state.global_step] = time.perf_counter() - self.t0

    args = GRPOConfig(output_dir=str(work / "run"), max_steps=a.steps, per_device_train_batch_size=a.batch,
                      num_generations=a.num_generations, max_completion_length=a.max_completion_length,
                      learning_rate=a.lr, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                      bf16=False, seed=0, dataloader_num_workers=0)
    trainer = GRPOTrainer(model=policy, reward_funcs=[reward], args=args,
                          train_dataset=Dataset.from_dict({"prompt": prompts, **(
                              {"reference": references} if references is not None else {})}),
                          callbacks=[Timer()])
    t0 = time.perf_counter()
    trainer.train()
    rows = step_log(trainer.state, step_seconds)
    k = max(1, min(5, len(rows) // 2))
    summary = {"reward_first": sum(r["reward_mean"] for r in rows[:k]) / k,
               "reward_last": sum(r["reward_mean"] for r in rows[-k:]) / k, "window": k,
               "judge_calls": sum(h["judge_calls"] for h in reward.history),
               "masked": sum(h["masked"] for h in reward.history), "seconds": time.perf_counter() - t0}
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": hardware.cpu_description(),
              "policy": a.policy if not a.tiny else "tiny", "rm": rm if not a.tiny else "tiny", "sets": sets,
              "steps": a.steps, "num_generations": a.num_generations, "batch": a.batch, "prompts": len(prompts),
              "max_completion_length": a.max_completion_length, "lr": a.lr, "asynchronous": a.asynchronous,
              "reference": a.reference,
              "summary": summary, "per_step": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, a.plot, f"GRPO, {result['policy']} with gramr2 reward {result['rm']} ({a.pairing}, G="
                       f"{a.num_generations}), {result['date'][:10]}")
    print(json.dumps(summary, indent=2))
    print(f"wrote {a.out} and {a.plot}", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except GramrError as e:
        sys.exit(f"error: {e.message}" + (f"\nhint: {e.hint}" if e.hint else ""))
