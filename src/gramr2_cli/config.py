"""Recipes: YAML files + dotted overrides (`-s train.lr=1e-5`), typed, validated, resolved.

One `Config` holds every section, so `--set generate.max_new_tokens=16` means the same in every command and a
pipeline recipe (self-training) is one file. Shared sections live here; each stage's section is the dataclass
defined next to the stage (`stages/filter.py: FilterConfig`). Values are coerced to the field's declared type,
never YAML's guess (PyYAML reads `1e-5` as a string and `no` as False). Unknown keys fail with the closest names.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import GramrError
from .serve import ServeConfig
from .stages.evaluate import EvaluateConfig
from .stages.filter import FilterConfig
from .stages.prove import ProveConfig
from .stages.rank import RankConfig
from .stages.self_label import SelfLabelConfig
from .stages.self_train import SelfTrainConfig
from .stages.synth import SynthConfig

ENGINES = ("auto", "hf", "vllm", "openai")


@dataclass
class GenerateConfig:
    """Sampling and engine settings shared by every generating stage."""
    engine: str = "auto"              # auto = vllm when importable, else hf; openai = remote `vllm serve` endpoints
    max_new_tokens: int = 192
    temperature: float = 0.8
    top_p: float = 1.0
    batch_size: int = 16              # hf engine: prompts per forward batch (length-bucketed)
    dtype: str = "auto"               # auto = bfloat16 for vllm, float32 for hf on CPU; or float32/bfloat16
    tensor_parallel_size: int = 1     # vllm on GPUs
    gpu_memory_utilization: float = 0.85
    kv_cache_gb: int = 2              # vllm on CPU: VLLM_CPU_KVCACHE_SPACE
    verdict_only: bool = False        # judge without a rationale: forced `<answer>`, likelier of A/B (for models
                                      # trained with the `label` objective, the generative-RM baseline)
    endpoints: list[str] = field(default_factory=list)   # openai engine: base URLs, e.g. http://host:8000/v1
    max_concurrency: int = 8          # openai engine: requests in flight at most, over all endpoints (ours)
    request_timeout: float = 600.0    # openai engine: seconds per request before it is retried (ours)
    retries: int = 3                  # openai engine: retries on connection errors / timeouts / HTTP 5xx (ours)


@dataclass
class LoraConfig:
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class TrainConfig:
    """The one trainer core's settings (DESIGN §5)."""
    objective: str = "reasoning"      # reasoning (Eq. 2) | prover (Eq. 4) | label (GRAM v1 / GenRM) | pairgen
    lr: float = 1e-4
    max_steps: int = -1               # -1 = run `epochs`
    epochs: float = 1.0
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 512             # longer examples are skipped and counted, never truncated silently
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    label_smoothing: float = 0.0      # the paper's ε: targets (1-ε, ε); torch label_smoothing = 2ε
    save_steps: int = 50
    save_total_limit: int = 2         # checkpoints kept while training (each holds optimizer state)
    keep_checkpoints: bool = False    # keep <output>/checkpoints/ after a finished run
    logging_steps: int = 5
    init: str = "backbone"            # backbone | continue (self-training retrain; paper: not stated)
    precision: str = "auto"           # auto = bf16 on GPU, fp32 on CPU; or fp32/bf16
    merge_lora: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class Config:
    """Every recipe section. Stage sections are named after the stage."""
    model: str = "embedded:smollm2-135m"
    prompt: str = "gramr2-v1"         # judge prompt version: gramr2-v1 (short default) | gram-rr (released models)
    seed: int = 0
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    prove: ProveConfig = field(default_factory=ProveConfig)
    self_label: SelfLabelConfig = field(default_factory=SelfLabelConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    rank: RankConfig = field(default_factory=RankConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    self_train: SelfTrainConfig = field(default_factory=SelfTrainConfig)


# ---------------------------------------------------------------- coercion

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin in (list, tuple):
        (item_tp, *_) = args or (str,)
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("[") and value.endswith("]"):     # -s key=[a,b] as well as key=a,b
                value = value[1:-1]
            value = [v.strip() for v in value.split(",") if v.strip()] if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise GramrError(f"config key '{key}': expected a list, got {value!r}")
        return [_coerce(v, item_tp, key) for v in value]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise GramrError(f"config key '{key}': expected a mapping, got {value!r}")
        return dict(value)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in _TRUE:
                return True
            if s in _FALSE:
                return False
            raise ValueError
        if tp is int:
            if isinstance(value, bool):
                raise ValueError
            f = float(value)
            if f != int(f):
                raise ValueError
            return int(f)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        raise GramrError(f"config key '{key}': expected {tp.__name__}, got {value!r}") from None
    return value


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys.extend(_all_keys(tp, f"{prefix}{f.name}."))
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _unknown(key: str) -> GramrError:
    close = difflib.get_close_matches(key, _all_keys(Config), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    return GramrError(f"unknown config key '{key}'{hint}")


def _set(obj: Any, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    target = obj
    for i, name in enumerate(parts):
        hints = typing.get_type_hints(type(target))
        if name not in hints or not any(f.name == name for f in dataclasses.fields(target)):
            raise _unknown(dotted)
        tp = hints[name]
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(tp):
                if not isinstance(value, dict):
                    raise GramrError(f"config key '{dotted}' is a section; set its keys, e.g. '{dotted}.<key>=...'")
                for k, v in value.items():
                    _set(obj, f"{dotted}.{k}", v)
                return
            setattr(target, name, _coerce(value, tp, dotted))
            return
        if not dataclasses.is_dataclass(tp):
            raise _unknown(dotted)
        target = getattr(target, name)


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k not in ("meta",):
            sub = _flatten(v, key + ".")
            out.extend(sub if sub else [(key, v)])
        else:
            out.append((key, v))
    return out


def _read_yaml(path: Path, depth: int = 0) -> dict:
    if not path.exists():
        raise GramrError(f"{path}: recipe not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise GramrError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise GramrError(f"{path}: a recipe must be a mapping of sections")
    base = data.pop("extends", None)
    if base:
        if depth >= 1:
            raise GramrError(f"{path}: 'extends' may be used one level deep only")
        parent = _read_yaml((path.parent / base).resolve(), depth + 1)
        merged = dict(parent)
        for k, v in data.items():
            merged[k] = {**merged[k], **v} if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
        data = merged
    return data


def parse_override(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise GramrError(f"--set {item!r}: expected key=value, e.g. --set train.lr=1e-5")
    k, v = item.split("=", 1)
    return k.strip(), v


def load(recipe: Path | str | None = None, overrides: list[str] | None = None, **direct: Any) -> Config:
    """Build a Config: defaults, then the recipe YAML (with one level of `extends`), then `--set` overrides,
    then `direct` dotted values from dedicated CLI flags (those that are not None). Raises GramrError."""
    cfg = Config()
    if recipe:
        for k, v in _flatten(_read_yaml(Path(recipe))):
            _set(cfg, k, v)
    for item in overrides or []:
        k, v = parse_override(item)
        _set(cfg, k, v)
    for k, v in direct.items():
        if v is not None:
            _set(cfg, k.replace("__", "."), v)
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Checks that span keys; named objects are checked where they are chosen."""
    if cfg.generate.engine not in ENGINES:
        raise GramrError(f"generate.engine: unknown engine {cfg.generate.engine!r}; choose from {', '.join(ENGINES)}")
    if cfg.generate.max_new_tokens < 1:
        raise GramrError("generate.max_new_tokens must be >= 1")
    if cfg.train.batch_size < 1 or cfg.train.grad_accum < 1:
        raise GramrError("train.batch_size and train.grad_accum must be >= 1")
    if not 0.0 <= cfg.train.label_smoothing < 0.5:
        raise GramrError("train.label_smoothing (the paper's ε) must be in [0, 0.5)")
    from .judge import ORDERS
    from .prompts import PROMPT_VERSIONS
    from .stages.rank import METHODS
    from .train.objectives import OBJECTIVES
    named = [("prompt", cfg.prompt, PROMPT_VERSIONS), ("train.objective", cfg.train.objective, tuple(OBJECTIVES)),
             ("rank.method", cfg.rank.method, METHODS), ("rank.orders", cfg.rank.orders, tuple(ORDERS)),
             ("evaluate.orders", cfg.evaluate.orders, tuple(ORDERS)), ("serve.orders", cfg.serve.orders, tuple(ORDERS)),
             ("self_label.orders", cfg.self_label.orders, tuple(ORDERS))]
    for key, value, valid in named:
        if value not in valid:
            raise GramrError(f"{key}: unknown value {value!r}; choose from {', '.join(valid)}")


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def sections(cfg: Config, *names: str) -> dict:
    """The resolved sub-config a stage depends on (what its output's config hash covers)."""
    d = to_dict(cfg)
    return {n: d[n] for n in names}
