"""Issue 26 with the real TRL trainers (2 steps, tiny random policy, CPU): GRPO with the async reward through a
`gramr2 serve` (the server's /health shows the groups' requests overlapped), and OnlineDPOTrainer with the
Online DPO adapter in-process, through the server, and with every comparison masked (ties). The tiny random judge
writes no parseable verdict, so the scored runs judge verdict-only (generate.verdict_only)."""

from __future__ import annotations

import math

import httpx
import pytest
from test_trl_grpo import PROMPTS, check_rewards_reached_the_trainer

from gramr2_cli import recipe, rlhf
from gramr2_cli.core import models


@pytest.mark.xdist_group("trl_server")
def test_async_grpo_through_gramr2_serve(tiny_model, trl_server, tmp_path):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer
    inner = rlhf.make_trl_reward(trl_server, num_generations=2, asynchronous=True)
    seen: list[list] = []

    async def gramr2_reward(prompts, completions, **kw):
        out = await inner(prompts, completions, **kw)
        seen.append(list(out))
        return out
    before = httpx.get(trl_server + "/health").json()
    args = GRPOConfig(output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=4,
                      num_generations=2, max_completion_length=8, learning_rate=1e-5, logging_steps=1,
                      save_strategy="no", report_to=[], use_cpu=True, bf16=False, seed=0, dataloader_num_workers=0)
    trainer = GRPOTrainer(model=str(tiny_model), reward_funcs=[gramr2_reward], args=args,
                          train_dataset=Dataset.from_dict({"prompt": PROMPTS}))
    assert trainer._has_async_funcs                       # TRL awaits it on its event loop, not as a sync call
    trainer.train()
    logs = [h for h in trainer.state.log_history if "reward" in h]
    after = httpx.get(trl_server + "/health").json()
    check_rewards_reached_the_trainer(logs, seen, batch=4)
    # 2 groups of 2 per step, each group its own request: 4 requests, 2 in flight at once, and both groups'
    # judge calls (1 pair × 2 orders each) in one engine call: 2 batches of 4 (the server is shared, so counted as
    # differences; the other tests on it send one request at a time, so max_in_flight 2 is this test's)
    assert after["requests"] - before["requests"] == 4 and after["max_in_flight"] == 2
    assert after["batches"] - before["batches"] == 2 and after["pairs"] - before["pairs"] == 8
    assert after["judge_calls"] - before["judge_calls"] == 8 and logs[0]["gramr2/judge_calls"] == 4
    assert logs[0]["gramr2/masked"] == 0 and logs[0]["gramr2/scored"] == 4


def run_online_dpo(tiny_model, reward_fn, out_dir):
    from datasets import Dataset
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer
    seen: list[tuple[list, list]] = []

    def gramr2_reward(prompts, completions, **kw):
        out = reward_fn(prompts, completions, **kw)
        seen.append((list(completions), list(out)))
        return out
    args = OnlineDPOConfig(output_dir=str(out_dir), max_steps=2, per_device_train_batch_size=2, max_new_tokens=8,
                           learning_rate=1e-5, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                           bf16=False, seed=0, dataloader_num_workers=0)
    trainer = OnlineDPOTrainer(model=str(tiny_model), reward_funcs=[gramr2_reward], args=args,
                               train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
                               processing_class=models.load_tokenizer(str(tiny_model)),
                               callbacks=[reward_fn.log_callback()])
    trainer.train()
    logs = [h for h in trainer.state.log_history if "objective/scores" in h]
    assert len(logs) == 2 and len(seen) == 2                   # one reward call per step
    return logs, seen


def check_preferences_reached_the_trainer(logs, seen):
    for h, (_, got) in zip(logs, seen):
        b = len(got) // 2
        assert len(got) == 4 and None not in got and len(set(got)) > 1
        assert h["objective/scores"] == pytest.approx(sum(got) / len(got), abs=1e-6)
        # chosen = the higher reward of each prompt's pair: the margin is the mean gap
        assert h["objective/scores_margin"] == pytest.approx(sum(abs(got[i] - got[i + b]) for i in range(b)) / b,
                                                             abs=1e-6)
        assert h["objective/scores_margin"] > 0 and not math.isnan(h["loss"])
        assert h["gramr2/judge_calls"] == 4 and h["gramr2/masked"] == 0      # 2 prompts × 1 pair × 2 orders


def test_online_dpo_in_process(tiny_model, tmp_path):
    cfg = recipe.load(None, ["generate.verdict_only=true", "serve.pairing=round-robin"], model=str(tiny_model))
    logs, seen = run_online_dpo(tiny_model, rlhf.make_online_dpo_reward(str(tiny_model), cfg=cfg), tmp_path / "r")
    check_preferences_reached_the_trainer(logs, seen)


@pytest.mark.xdist_group("trl_server")
def test_online_dpo_through_gramr2_serve(tiny_model, trl_server, tmp_path):
    before = httpx.get(trl_server + "/health").json()
    logs, seen = run_online_dpo(tiny_model, rlhf.make_online_dpo_reward(trl_server), tmp_path / "r")
    after = httpx.get(trl_server + "/health").json()
    check_preferences_reached_the_trainer(logs, seen)
    assert after["judge_calls"] - before["judge_calls"] == 8 and after["groups"] - before["groups"] == 4


def test_online_dpo_masked_comparisons_become_ties(tiny_model, tmp_path):
    """With rationales, the tiny random judge never writes a verdict in 2 tokens: every comparison is masked,
    every reward a 0.5 tie (OnlineDPOTrainer then takes the first completion as chosen), the margin 0, and the
    log counts them with the completions' mean length."""
    cfg = recipe.load(None, ["generate.max_new_tokens=2", "serve.pairing=round-robin"], model=str(tiny_model))
    logs, seen = run_online_dpo(tiny_model, rlhf.make_online_dpo_reward(str(tiny_model), cfg=cfg), tmp_path / "r")
    for h, (completions, got) in zip(logs, seen):
        assert got == [0.5] * 4
        assert h["objective/scores"] == 0.5 and h["objective/scores_margin"] == 0
        assert h["gramr2/masked"] == 4 and h["gramr2/masked_pairs"] == 2 and "gramr2/scored_chars" not in h
        assert h["gramr2/masked_chars"] == pytest.approx(sum(len(c) for c in completions) / 4)
