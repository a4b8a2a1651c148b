"""Reward functions for RLHF frameworks (TRL GRPO, verl), backed by a local engine or a `gramr2 serve` URL.

Every hook runs the group path (`group_rewards.batch_rewards`, the server's too): a batch's completions are
grouped by prompt and scored with `serve.pairing` — `reference` (default: P(completion beats the row's reference
response), both orders averaged, GRAM v1's RLHF scheme) or `round-robin`/`circular`/`knockout` among a prompt's
rollouts (ours). A failed judgment is masked; what each framework gets for it (docs/rlhf.md):
- TRL: None (GRPOTrainer turns it into NaN and leaves the completion out of its group's mean/std, advantage 0);
- verl `compute_score` and OpenRLHF `/get_reward`: the mean of the group's scored rewards (a group with none
  scored: 0.5 for all), since neither takes a missing reward (`group_rewards.fill_masked`).

- `make_trl_reward(model_or_url, reference_column="reference", num_generations=None)` → `fn(prompts,
  completions, **kwargs)` for `trl.GRPOTrainer(reward_funcs=[fn])`; judge calls, failures and seconds per batch go
  to TRL's `log_metric` (as `gramr2/...`) and this module's logger.
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
import urllib.error
import urllib.request
from typing import Any

from . import group_rewards
from .errors import GramrError

DEFAULT_URL = "http://127.0.0.1:8000"
log = logging.getLogger("gramr2.rlhf")


def as_text(x: Any) -> str:
    """TRL's standard (str) or conversational (list of messages) prompt/completion → text."""
    if isinstance(x, str):
        return x
    if isinstance(x, list) and x and all(isinstance(m, dict) for m in x):
        if all(m.get("role") == "assistant" for m in x):
            return "".join(str(m.get("content", "")) for m in x)
        from .formats import render_messages
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
            self.cfg = recipe.load(None, [], model=self.target)
        return self.cfg

    def _local(self):
        if self.engine is None:
            from . import judge
            if in_spawned_bootstrap():
                raise GramrError("the reward model is being loaded while a child process re-imports your script",
                                 hint="put the training code under `if __name__ == \"__main__\":`")
            self.cfg = local_config(self.config())
            self.engine = judge.load(self.cfg)
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
            from .serve import group_config, judge_fn
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


def make_trl_reward(model_or_url: str, reference_column: str = "reference", *, cfg=None,
                    num_generations: int | None = None, api_key: str | None = None):
    """A TRL GRPO reward function over the group path: TRL passes a batch's completions, G = num_generations in
    a row per prompt; they are grouped by prompt (in chunks of `num_generations` when given) and scored with
    `serve.pairing` of `cfg` (local) or of the server (URL). Returns one float or None (masked) per completion.

    `model_or_url`: a model spec (loaded in this process on first call, hf engine unless `cfg` names vllm) or
    a `gramr2 serve` URL. The returned function raises GramrError when pairing `reference` needs
    `reference_column` and the dataset lacks it."""
    client = RewardClient(model_or_url, cfg, api_key=api_key)

    def gramr2_reward(prompts, completions, **kwargs) -> list[float | None]:
        refs = kwargs.get(reference_column)
        if refs is None and client.url is None and client.config().serve.pairing == "reference":
            raise GramrError(f"the dataset has no '{reference_column}' column",
                             hint="add the policy's greedy output per prompt as a column, or use "
                                  "-s serve.pairing=round-robin (docs/rlhf.md)")
        out, cost = client.rewards([as_text(p) for p in prompts], [as_text(c) for c in completions],
                                   None if refs is None else [as_text(r) for r in refs], num_generations)
        masked = sum(r is None for r in out)
        log.info("gramr2 reward: %d completions, %d judge calls, %d failed, %d masked",
                 len(out), cost["judge_calls"], cost["failed_calls"], masked)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):                      # TRL >= 1.x: averaged into the trainer's logs
            log_metric("gramr2/judge_calls", float(cost["judge_calls"]))
            log_metric("gramr2/failed_calls", float(cost["failed_calls"]))
            log_metric("gramr2/masked", float(masked))
        return out

    gramr2_reward.__name__ = "gramr2_reward"     # TRL logs rewards under the function's name
    gramr2_reward.client = client
    return gramr2_reward


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
