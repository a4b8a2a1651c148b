"""Reward functions for RLHF frameworks (TRL GRPO, verl), backed by a local engine or a `gramr2 serve` URL.

Every hook runs the group path (`group_rewards.batch_rewards`, the server's too): a batch's completions are
grouped by prompt and scored with `serve.pairing` — `reference` (default: P(completion beats the row's reference
response), both orders averaged, GRAM v1's RLHF scheme) or `round_robin`/`circular`/`knockout` among a prompt's
rollouts (ours). A failed judgment is masked; what each framework gets for it (docs/rlhf.md):
- TRL: None (GRPOTrainer turns it into NaN and leaves the completion out of its group's mean/std, advantage 0);
- verl `compute_score` and OpenRLHF `/get_reward`: the mean of the group's scored rewards (a group with none
  scored: 0.5 for all), since neither takes a missing reward (`group_rewards.fill_masked`).

- `make_trl_reward(model_or_url, reference_column="reference", num_generations=None, asynchronous=False)` →
  `fn(prompts, completions, **kwargs)` (an `async def` with `asynchronous=True`: one server request per group, all
  in flight at once) for `trl.GRPOTrainer(reward_funcs=[fn])`;
- `make_online_dpo_reward(model_or_url, ...)` for `trl.experimental.online_dpo.OnlineDPOTrainer`: each prompt's
  two completions judged against each other; a masked comparison becomes a tie (the trainer cannot skip a pair).
  Each hook's calls (judge calls, failures, masked vs scored rewards and their mean lengths, seconds) go to
  `fn.history`, TRL's `log_metric` where the trainer passes it (as `gramr2/...`) and this module's logger.
- `compute_score(data_source, solution_str, ground_truth, extra_info=None)` for verl's `custom_reward_function`
  (the prompt from `extra_info["question"]` or `"prompt"`), `compute_score_async` for verl's async reward loop;
  the server from `GRAMR2_REWARD_URL` (default http://127.0.0.1:8000) or a local model from `GRAMR2_REWARD_MODEL`.

Spawn safety: a model loaded in-process uses the hf engine unless the recipe names `generate.engine=vllm`
explicitly (vLLM's engine core spawns a process that re-imports an unguarded training script); loading while a
spawned child re-imports the script fails with one line saying what to do.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from .core.errors import GramrError
from .judging import group_rewards

DEFAULT_URL = "http://127.0.0.1:8000"
log = logging.getLogger("gramr2.rlhf")


def as_text(x: Any) -> str:
    """TRL's standard (str) or conversational (list of messages) prompt/completion → text."""
    if isinstance(x, str):
        return x
    if isinstance(x, list) and x and all(isinstance(m, dict) for m in x):
        if all(m.get("role") == "assistant" for m in x):
            return "".join(str(m.get("content", "")) for m in x)
        from .core.formats import render_messages
        return render_messages(x)
    raise GramrError(f"expected a string or a list of chat messages, got {type(x).__name__}")


def in_spawned_bootstrap() -> bool:
    """True while a spawned child process re-imports the parent's main script (`__mp_main__`)."""
    main = sys.modules.get("__main__")
    return getattr(main, "__name__", "") == "__mp_main__"


def local_config(cfg):
    """`cfg` with the in-process engine made spawn-safe: `auto` → hf (vLLM only when named explicitly)."""
    import dataclasses
    if cfg.generate.engine == "auto":
        cfg = dataclasses.replace(cfg, generate=dataclasses.replace(cfg.generate, engine="hf"))
    return cfg


class RewardClient:
    """Rewards from a running server (`http(s)://…`) or a model loaded in-process (lazily, on first use)."""

    def __init__(self, model_or_url: str, cfg=None, timeout: float = 600.0, api_key: str | None = None):
        self.target = str(model_or_url)
        self.url = self.target.rstrip("/") if self.target.startswith(("http://", "https://")) else None
        self.timeout = timeout
        self.api_key = api_key or os.environ.get("GRAMR2_API_KEY") or None
        self.cfg = cfg
        self.engine = None

    def config(self):
        if self.cfg is None:
            from . import recipe
            self.cfg = recipe.load_recipe(None, [], model=self.target)
        return self.cfg

    def _local(self):
        if self.engine is None:
            from . import runner
            if in_spawned_bootstrap():
                raise GramrError("the reward model is being loaded while a child process re-imports your script",
                                 hint="put the training code under `if __name__ == \"__main__\":`")
            self.cfg = local_config(self.config())
            self.engine = runner.recipe_engine(self.cfg)
        return self.engine

    def rewards(self, prompts: list[str], responses: list[str], references: list[str] | None,
                group_size: int | None = None) -> tuple[list[float | None], dict]:
        """One reward (None = masked) per (prompt, response[, reference]) and the cost {judge_calls,
        failed_calls}. Raises GramrError for mismatched lengths or a server that refuses the request or cannot
        be reached."""
        if len(prompts) != len(responses) or (references is not None and len(references) != len(prompts)):
            raise GramrError(f"lengths differ: {len(prompts)} prompts, {len(responses)} responses, "
                             f"{len(references or [])} references")
        if not prompts:
            return [], {"judge_calls": 0, "failed_calls": 0}
        if self.url is None:
            from .server.serve import group_config, judge_fn
            engine = self._local()
            out, results = group_rewards.batch_rewards(judge_fn(engine, self.cfg, "ab"), prompts, responses,
                                                       references, group_config(self.cfg.serve), group_size)
            return out, {"judge_calls": sum(r.judge_calls for r in results),
                         "failed_calls": sum(r.failed_calls for r in results)}
        body = {"prompt": prompts, "response": responses}
        if references is not None:
            body["reference"] = references
        got = self._post("/score", body)
        return [None if x is None else float(x) for x in got["rewards"]], \
            {"judge_calls": got.get("judge_calls", 0), "failed_calls": got.get("failed_calls", 0)}

    async def rewards_async(self, prompts: list[str], responses: list[str], references: list[str] | None,
                            group_size: int | None = None) -> tuple[list[float | None], dict]:
        """`rewards` without blocking the event loop. A server gets one /score request per group (grouped as
        `group_rewards.group_indices` does), all in flight at once, each from a worker thread (its micro-batcher
        joins them into shared engine calls); a local model judges the whole batch in one worker thread (one
        engine, not thread-safe). Raises what `rewards` raises."""
        if self.url is None or not prompts:
            return await asyncio.to_thread(self.rewards, prompts, responses, references, group_size)
        if len(prompts) != len(responses) or (references is not None and len(references) != len(prompts)):
            raise GramrError(f"lengths differ: {len(prompts)} prompts, {len(responses)} responses, "
                             f"{len(references or [])} references")
        keys = [(p, "" if references is None else references[i]) for i, p in enumerate(prompts)]
        groups = group_rewards.group_indices(keys, group_size)

        def pick(xs: list[str] | None, g: list[int]) -> list[str] | None:
            return None if xs is None else [xs[i] for i in g]
        got = await asyncio.gather(*(asyncio.to_thread(self.rewards, pick(prompts, g), pick(responses, g),
                                                       pick(references, g)) for g in groups))
        out: list[float | None] = [None] * len(prompts)
        cost = {"judge_calls": 0, "failed_calls": 0}
        for g, (rewards, c) in zip(groups, got):
            for i, r in zip(g, rewards):
                out[i] = r
            cost = {k: cost[k] + c[k] for k in cost}
        return out, cost

    def _post(self, path: str, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(f"{self.url}{path}", data=json.dumps(body).encode("utf-8"), method="POST",
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")[:300]
            raise GramrError(f"reward server {self.url}: HTTP {e.code}: {detail}") from None
        except urllib.error.URLError as e:
            raise GramrError(f"reward server {self.url} unreachable ({e.reason})",
                             hint="start it with 'gramr2 serve --model <rm>'") from None


def batch_texts(prompts, completions, kwargs: dict, reference_column: str, client: RewardClient
                ) -> tuple[list[str], list[str], list[str] | None]:
    """A TRL batch as texts: prompts, completions and the `reference_column` column (None when absent). Raises
    GramrError when pairing `reference` (local model) needs the column and the dataset lacks it."""
    refs = kwargs.get(reference_column)
    if refs is None and client.url is None and client.config().serve.pairing == "reference":
        raise GramrError(f"the dataset has no '{reference_column}' column",
                         hint="add the policy's greedy output per prompt as a column, or use "
                              "-s serve.pairing=round_robin (docs/rlhf.md)")
    return ([as_text(p) for p in prompts], [as_text(c) for c in completions],
            None if refs is None else [as_text(r) for r in refs])


def report(fn, completions: list[str], rewards: list[float | None], cost: dict, seconds: float,
           kwargs: dict, **extra: float) -> None:
    """One reward call's numbers → `fn.history` (a dict per call), the `gramr2.rlhf` logger and, when the trainer
    passes `log_metric` (TRL GRPO), its logs as `gramr2/<name>` (averaged per logging step by TRL): judge_calls,
    failed_calls, masked, scored, masked_chars/scored_chars (mean characters; logged only when that set is not
    empty), seconds, and `extra`."""
    stats = {"judge_calls": cost["judge_calls"], "failed_calls": cost["failed_calls"],
             **group_rewards.mask_report(completions, rewards), "seconds": seconds, **extra}
    fn.history.append(stats)
    log.info("gramr2 reward: %d completions, %d judge calls, %d failed, %d masked (mean %s chars; scored %s) in "
             "%.1fs", len(rewards), stats["judge_calls"], stats["failed_calls"], stats["masked"],
             stats["masked_chars"], stats["scored_chars"], seconds)
    log_metric = kwargs.get("log_metric")
    if callable(log_metric):                      # TRL >= 1.x: averaged into the trainer's logs
        for k, v in stats.items():
            if v is not None:
                log_metric(f"gramr2/{k}", float(v))


def make_trl_reward(model_or_url: str, reference_column: str = "reference", *, cfg=None,
                    num_generations: int | None = None, api_key: str | None = None, asynchronous: bool = False):
    """A TRL GRPO reward function over the group path: TRL passes a batch's completions, G = num_generations in
    a row per prompt; they are grouped by prompt (in chunks of `num_generations` when given) and scored with
    `serve.pairing` of `cfg` (local) or of the server (URL). Returns one float or None (masked) per completion.

    `model_or_url`: a model spec (loaded in this process on first call, hf engine unless `cfg` names vllm) or
    a `gramr2 serve` URL. `asynchronous=True` returns an `async def` instead (TRL awaits it on its own event
    loop, concurrently with other async reward functions): each group goes to the server as its own request, all
    in flight at once; a local model judges in a worker thread. Every call's numbers (`report`) are in
    `fn.history`. The returned function raises GramrError when pairing `reference` needs `reference_column` and
    the dataset lacks it."""
    client = RewardClient(model_or_url, cfg, api_key=api_key)

    if asynchronous:
        async def gramr2_reward(prompts, completions, **kwargs) -> list[float | None]:
            ps, cs, refs = batch_texts(prompts, completions, kwargs, reference_column, client)
            t0 = time.perf_counter()
            out, cost = await client.rewards_async(ps, cs, refs, num_generations)
            report(gramr2_reward, cs, out, cost, time.perf_counter() - t0, kwargs)
            return out
    else:
        def gramr2_reward(prompts, completions, **kwargs) -> list[float | None]:
            ps, cs, refs = batch_texts(prompts, completions, kwargs, reference_column, client)
            t0 = time.perf_counter()
            out, cost = client.rewards(ps, cs, refs, num_generations)
            report(gramr2_reward, cs, out, cost, time.perf_counter() - t0, kwargs)
            return out

    gramr2_reward.__name__ = "gramr2_reward"     # TRL logs rewards under the function's name
    gramr2_reward.client = client
    gramr2_reward.history = []
    return gramr2_reward


def make_online_dpo_reward(model_or_url: str, reference_column: str = "reference", *, cfg=None,
                           api_key: str | None = None):
    """A reward function for TRL's `trl.experimental.online_dpo.OnlineDPOTrainer` (`reward_funcs=[fn]`), which
    samples two completions per prompt and passes a batch of 2B: the first completions of prompts 0..B−1, then
    the second ones. Each prompt's two completions are one group of 2, scored with `serve.pairing` (round_robin:
    exactly one comparison, judged in both orders). Returns one float per completion, never None.

    A masked comparison: OnlineDPOTrainer sums rewards with `nansum` (None → 0) and makes the first completion
    chosen when its reward is >= the second's, so a None would make a failed judgment always lose (a length
    bias when long rollouts fail more). Here a masked reward takes its pair's scored value, and a pair with
    neither scored gets 0.5 twice (`group_rewards.fill_masked`): a tie, which OnlineDPOTrainer resolves as "first
    completion chosen" — an arbitrary label on two exchangeable samples, counted as `masked_pairs` in
    `fn.history` (the trainer cannot skip a pair). OnlineDPOTrainer passes no `log_metric`: add
    `fn.log_callback()` to the trainer's callbacks to get the numbers in its logs. Raises GramrError for a batch
    that is not OnlineDPOTrainer's (odd size, halves with different prompts)."""
    client = RewardClient(model_or_url, cfg, api_key=api_key)

    def gramr2_reward(prompts, completions, **kwargs) -> list[float]:
        ps, cs, refs = batch_texts(prompts, completions, kwargs, reference_column, client)
        b = len(ps) // 2
        if len(ps) % 2 or ps[:b] != ps[b:]:
            raise GramrError(f"expected OnlineDPOTrainer's batch (the same B prompts twice), got {len(ps)} prompts "
                             "whose halves differ")
        order = [k for i in range(b) for k in (i, i + b)]       # each prompt's two completions side by side
        t0 = time.perf_counter()
        got, cost = client.rewards([ps[k] for k in order], [cs[k] for k in order],
                                   None if refs is None else [refs[k] for k in order], 2)
        raw: list[float | None] = [None] * len(ps)
        for k, r in zip(order, got):
            raw[k] = r
        pairs = [[i, i + b] for i in range(b)]
        report(gramr2_reward, cs, raw, cost, time.perf_counter() - t0, kwargs,
               masked_pairs=sum(raw[i] is None or raw[j] is None for i, j in pairs))
        return group_rewards.fill_masked(raw, pairs)

    gramr2_reward.__name__ = "gramr2_reward"
    gramr2_reward.client = client
    gramr2_reward.history = []
    gramr2_reward.log_callback = lambda: log_callback(gramr2_reward)
    return gramr2_reward


def log_callback(fn):
    """A transformers `TrainerCallback` that adds `fn.history` since the last log entry, averaged per key, to
    that entry as `gramr2/<name>` (for trainers that pass reward functions no `log_metric`)."""
    from transformers import TrainerCallback

    class GramrRewardLog(TrainerCallback):
        seen = 0

        def on_log(self, args, state, control, logs=None, **kwargs):
            calls, self.seen = fn.history[self.seen:], len(fn.history)
            merged = {}
            for k in dict.fromkeys(k for c in calls for k in c):
                vals = [c[k] for c in calls if c.get(k) is not None]
                if vals:
                    merged[f"gramr2/{k}"] = sum(vals) / len(vals)
            if state.log_history:                 # Trainer.log appends the entry, then calls on_log
                state.log_history[-1].update(merged)
            if logs is not None:
                logs.update(merged)
    return GramrRewardLog()


_CLIENTS: dict[str, RewardClient] = {}


def _client(url: str | None, model: str | None) -> RewardClient:
    target = url or model or os.environ.get("GRAMR2_REWARD_URL") or os.environ.get("GRAMR2_REWARD_MODEL") \
        or DEFAULT_URL
    if target not in _CLIENTS:
        _CLIENTS[target] = RewardClient(target)
    return _CLIENTS[target]


def _question(extra_info: Any) -> str:
    if isinstance(extra_info, dict):
        for k in ("question", "prompt"):
            if extra_info.get(k) is not None:
                return as_text(extra_info[k])
    raise GramrError("verl compute_score needs the prompt in extra_info['question'] (or extra_info['prompt'])")


def compute_score(data_source, solution_str, ground_truth, extra_info=None, *, url: str | None = None,
                  model: str | None = None, **_: Any):
    """verl custom reward: the group reward of solution_str (ground_truth = the reference response for pairing
    `reference`) for the prompt in extra_info. Lists in (verl's batch reward manager) → a list of floats out,
    grouped by prompt; one item → one float. A masked reward → its group's mean (`group_rewards.fill_masked`).
    `url`/`model` come from `custom_reward_function.reward_kwargs` or the GRAMR2_REWARD_URL/_MODEL variables."""
    client = _client(url, model)
    single = not isinstance(solution_str, (list, tuple))
    sols = [solution_str] if single else list(solution_str)
    truths = [ground_truth] if single else list(ground_truth)
    infos = [extra_info] if single else (list(extra_info) if isinstance(extra_info, (list, tuple))
                                        else [extra_info] * len(sols))
    qs = [_question(e) for e in infos]
    refs = [as_text(g) for g in truths]
    out, _cost = client.rewards(qs, [as_text(s) for s in sols], refs)
    filled = group_rewards.fill_masked(out, group_rewards.group_indices(list(zip(qs, refs))))
    return filled[0] if single else filled


async def compute_score_async(data_source, solution_str, ground_truth, extra_info=None, **kwargs: Any):
    """`compute_score` for verl's async reward loop: the HTTP call runs in a worker thread, so the loop keeps
    other rollouts' requests in flight (the server micro-batches them)."""
    return await asyncio.to_thread(compute_score, data_source, solution_str, ground_truth, extra_info, **kwargs)
