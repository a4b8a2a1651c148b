"""Reward functions for RLHF frameworks (TRL GRPO, verl), backed by a local engine or a `gramr2 serve` URL.

The reward is GRAM-R²'s: P(the policy's response beats a reference response), averaged over both presentation
orders (`serve.reward_of`). The reference is the policy's greedy output for the same prompt, precomputed into a
dataset column (TRL) or verl's `ground_truth`. See docs/rlhf.md for examples.

- `make_trl_reward(model_or_url, reference_column="reference")` → `fn(prompts, completions, **kwargs)`
  for `trl.GRPOTrainer(reward_funcs=[fn])`; TRL passes every dataset column as a keyword, repeated per completion.
- `compute_score(data_source, solution_str, ground_truth, extra_info=None)` for verl's
  `custom_reward_function`; the prompt comes from `extra_info["question"]` (or `"prompt"`), the server from
  `GRAMR2_REWARD_URL` (default http://127.0.0.1:8000) or a local model from `GRAMR2_REWARD_MODEL`.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from .errors import GramrError

DEFAULT_URL = "http://127.0.0.1:8000"


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


class RewardClient:
    """Rewards from a running server (`http(s)://…`) or a model loaded in-process (lazily, on first use)."""

    def __init__(self, model_or_url: str, cfg=None, timeout: float = 600.0):
        self.target = str(model_or_url)
        self.url = self.target.rstrip("/") if self.target.startswith(("http://", "https://")) else None
        self.timeout = timeout
        self.cfg = cfg
        self.engine = None

    def _local(self):
        if self.engine is None:
            from . import judge, recipe
            self.cfg = self.cfg or recipe.load(None, [], model=self.target)
            self.engine = judge.load(self.cfg)
        return self.engine

    def rewards(self, prompts: list[str], responses: list[str], references: list[str]) -> list[float]:
        """One reward per (prompt, response, reference). Raises GramrError for mismatched lengths or a server
        that refuses the request or cannot be reached."""
        if not (len(prompts) == len(responses) == len(references)):
            raise GramrError(f"lengths differ: {len(prompts)} prompts, {len(responses)} responses, "
                             f"{len(references)} references")
        if not prompts:
            return []
        if self.url is None:
            from .serve import score_against_reference
            return score_against_reference(self._local(), self.cfg, prompts, responses, references)
        body = json.dumps({"prompt": prompts, "response": responses, "reference": references}).encode("utf-8")
        req = urllib.request.Request(f"{self.url}/score", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return [float(x) for x in json.loads(r.read())["rewards"]]
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")[:300]
            raise GramrError(f"reward server {self.url}: HTTP {e.code}: {detail}") from None
        except urllib.error.URLError as e:
            raise GramrError(f"reward server {self.url} unreachable ({e.reason})",
                             hint="start it with 'gramr2 serve --model <rm>'") from None


def make_trl_reward(model_or_url: str, reference_column: str = "reference", *, cfg=None):
    """A TRL GRPO reward function: reward = P(completion beats the row's reference), both orders averaged.

    `model_or_url`: a model spec (loaded in this process on first call) or a `gramr2 serve` URL. `cfg`: a
    `recipe.Config` for the local engine (prompt version, votes/orders in `serve.*`). The returned function
    raises GramrError when the dataset lacks `reference_column`."""
    client = RewardClient(model_or_url, cfg)

    def gramr2_reward(prompts, completions, **kwargs) -> list[float]:
        refs = kwargs.get(reference_column)
        if refs is None:
            raise GramrError(f"the dataset has no '{reference_column}' column",
                             hint="add the policy's greedy output per prompt as a column (docs/rlhf.md)")
        return client.rewards([as_text(p) for p in prompts], [as_text(c) for c in completions],
                              [as_text(r) for r in refs])

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
    """verl custom reward: P(solution_str beats ground_truth, the reference response) for the prompt in
    extra_info. Lists in (verl's batch reward manager) → a list of floats out; one item → one float.
    `url`/`model` come from `custom_reward_function.reward_kwargs` or the GRAMR2_REWARD_URL/_MODEL variables."""
    client = _client(url, model)
    if isinstance(solution_str, (list, tuple)):
        infos = extra_info if isinstance(extra_info, (list, tuple)) else [extra_info] * len(solution_str)
        return client.rewards([_question(e) for e in infos], [as_text(s) for s in solution_str],
                              [as_text(g) for g in ground_truth])
    return client.rewards([_question(extra_info)], [as_text(solution_str)], [as_text(ground_truth)])[0]
