"""gramr2: train and run reasoning generative reward models the GRAM-R² way (arXiv 2509.02492).

The public Python API is the names in `__all__`, imported lazily: `import gramr2_cli` loads no engine, torch or
transformers; each name loads its module on first use.

    from gramr2_cli import load_recipe, load_engine, judge_pairs
    cfg = load_recipe("recipes/rank.yaml", ["generate.engine=hf"])
    engine = load_engine(cfg.model, cfg.generate, cfg.seed)
    judgments = judge_pairs(engine, [{"prompt": "2+2?", "response_a": "4", "response_b": "5"}], orders="both")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute)
_API: dict[str, tuple[str, str]] = {
    # recipes and data
    "load_recipe": ("recipe", "load_recipe"),       # a recipe YAML (+ --set overrides) → the checked Config
    "Config": ("recipe", "Config"),
    "read_records": ("core.readers", "read_all"),        # records of files/directories (JSONL, JSON, Parquet)
    "new_pair": ("core.records", "new_pair"),
    "GramrError": ("core.errors", "GramrError"),
    "embedded_model": ("core.models", "embedded_dir"),   # the directory of a model shipped with gramr2
    # engines and judging
    "load_engine": ("engines", "load_engine"),      # (model, cfg.generate, seed) → an engine (hf, vllm, openai)
    "Generation": ("engines", "Generation"),
    "render_prompt": ("core.prompts", "render"),
    # engine + pairs → Judgments (votes, label, confidence, P(A))
    "judge_pairs": ("judging.judge", "judge_pairs"),
    "judge_settings": ("judging.judge", "settings"),
    "Judgment": ("judging.judge", "Judgment"),
    "gold_label": ("judging.judge", "gold_label"),
    # RLHF rewards
    "make_trl_reward": ("rlhf", "make_trl_reward"),
    "make_online_dpo_reward": ("rlhf", "make_online_dpo_reward"),
    "compute_score": ("rlhf", "compute_score"),     # verl's custom_reward_function
    # group rewards: one per rollout of each group (GRPO)
    "score_groups": ("judging.group_rewards", "score_groups"),
    "GroupConfig": ("judging.group_rewards", "GroupConfig"),
    "judge_compare": ("judging.group_rewards", "judge_compare"),
}

__all__ = sorted(_API)    # no name is also a submodule's (`group_rewards` is the module; `score_groups` its API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'gramr2_cli' has no attribute {name!r}")
    module, attr = _API[name]
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
