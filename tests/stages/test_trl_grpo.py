"""A real RL run: trl.GRPOTrainer, 2 steps on the tiny policy, with gramr2's group reward — in-process (hf
engine) and through a `gramr2 serve` (conftest.py: one, shared). The tiny random judge never writes a parseable
verdict, so both runs judge verdict-only (generate.verdict_only: the forced answer token's P(A), always read):
the rewards are then real judge probabilities, not masked."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest

from gramr2_cli import recipe, rlhf

SRC = str(Path(rlhf.__file__).resolve().parents[1])
PROMPTS = ["What is 2+2?", "Name a colour.", "Say hi.", "Count to three.",
           "What is the capital of France?", "Spell cat.", "Is ice cold?", "Name a fruit."]


def recording(fn):
    """The reward function, keeping what it returned (TRL logs under the function's name)."""
    seen: list[list] = []

    def gramr2_reward(prompts, completions, **kw):
        out = fn(prompts, completions, **kw)
        seen.append(list(out))
        return out
    gramr2_reward.seen = seen
    return gramr2_reward


def run_grpo(tiny_model, reward_fn, out_dir, num_generations):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer
    ds = Dataset.from_dict({"prompt": PROMPTS, "reference": ["I do not know."] * len(PROMPTS)})
    args = GRPOConfig(output_dir=str(out_dir), max_steps=2, per_device_train_batch_size=4,
                      num_generations=num_generations, max_completion_length=8, learning_rate=1e-5,
                      logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, bf16=False, seed=0,
                      dataloader_num_workers=0)
    trainer = GRPOTrainer(model=str(tiny_model), reward_funcs=[reward_fn], args=args, train_dataset=ds)
    trainer.train()
    return [h for h in trainer.state.log_history if "reward" in h]


def check_rewards_reached_the_trainer(logs, seen, batch):
    assert len(logs) == 2 and len(seen) == 2                       # one generation batch per step
    for h, got in zip(logs, seen):
        assert len(got) == batch and None not in got
        assert len(set(got)) > 1                                   # not constant within the batch
        assert h["rewards/gramr2_reward/mean"] == pytest.approx(sum(got) / len(got), abs=1e-6)
        assert h["reward_std"] > 0 and not math.isnan(h["reward"])


def test_grpo_in_process_reference_pairing(tiny_model, tmp_path):
    cfg = recipe.load(None, ["generate.verdict_only=true", "serve.pairing=reference"], model=str(tiny_model))
    fn = recording(rlhf.make_trl_reward(str(tiny_model), cfg=cfg, num_generations=2))
    logs = run_grpo(tiny_model, fn, tmp_path / "run", num_generations=2)
    check_rewards_reached_the_trainer(logs, fn.seen, batch=4)
    assert logs[0]["gramr2/judge_calls"] == 8                      # 4 completions × 2 orders vs the reference
    assert logs[0]["gramr2/masked"] == 0


@pytest.mark.xdist_group("trl_server")   # conftest.py's one server, shared with test_trl_async_dpo.py
def test_grpo_through_gramr2_serve_round_robin(tiny_model, trl_server, tmp_path):
    before = httpx.get(trl_server + "/health").json()
    fn = recording(rlhf.make_trl_reward(trl_server))
    logs = run_grpo(tiny_model, fn, tmp_path / "run", num_generations=4)
    health = httpx.get(trl_server + "/health").json()
    check_rewards_reached_the_trainer(logs, fn.seen, batch=4)
    # one group of 4 per step: 6 pairs × 2 orders = 12 judge calls per step, counted by the server
    assert health["pairing"] == "round_robin"
    assert (health["groups"] - before["groups"], health["judge_calls"] - before["judge_calls"],
            health["failed_calls"] - before["failed_calls"]) == (2, 24, 0)
    assert logs[0]["gramr2/judge_calls"] == 12
