"""plan_cost: the arithmetic behind `gramr2 plan`: model size without weights, the Trainer's step schedule, and
per-GPU training-state memory. `stages/plan.py` uses it; it needs no stage, so it lives in the data core.

GPU peaks are NVIDIA datasheet dense bf16 figures; the memory model is mixed-precision AdamW as in the ZeRO
paper (Rajbhandari et al. 2020); see each function's docstring.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from . import models
from .errors import GramrError

GIB = 2 ** 30


@dataclass(frozen=True)
class GPU:
    name: str
    bf16_tflops: float      # dense (no sparsity) bf16 tensor-core peak, NVIDIA datasheet
    memory_gib: float       # usable memory as nvidia-smi reports it, rounded


GPUS = {
    "a100": GPU("NVIDIA A100 SXM 80GB", 312.0, 80.0),
    "a100-40gb": GPU("NVIDIA A100 SXM 40GB", 312.0, 40.0),
    "h100": GPU("NVIDIA H100 SXM 80GB", 989.0, 79.6),
    "h200": GPU("NVIDIA H200 SXM 141GB", 989.0, 140.4),
}
ZERO = ("0", "1", "2", "3", "fsdp")

_LLAMA_8B = {"model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
             "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
             "tie_word_embeddings": False, "max_position_embeddings": 131072}
_LLAMA_3B = {"model_type": "llama", "vocab_size": 128256, "hidden_size": 3072, "intermediate_size": 8192,
             "num_hidden_layers": 28, "num_attention_heads": 24, "num_key_value_heads": 8, "head_dim": 128,
             "tie_word_embeddings": True, "max_position_embeddings": 131072}
# The published config.json of each model (the fields the parameter count needs), for planning offline.
KNOWN_MODELS = {
    "meta-llama/Llama-3.1-8B-Instruct": _LLAMA_8B,
    "wangclnlp/GRAM-RR-LLaMA-3.1-8B-RewardModel": _LLAMA_8B,
    "meta-llama/Llama-3.2-3B-Instruct": _LLAMA_3B,
    "wangclnlp/GRAM-RR-LLaMA-3.2-3B-RewardModel": _LLAMA_3B,
    "Qwen/Qwen3-14B": {"model_type": "qwen3", "vocab_size": 151936, "hidden_size": 5120,
                       "intermediate_size": 17408, "num_hidden_layers": 40, "num_attention_heads": 40,
                       "num_key_value_heads": 8, "head_dim": 128, "tie_word_embeddings": False,
                       "max_position_embeddings": 40960},
    "embedded:smollm2-135m": {"model_type": "llama", "vocab_size": 49152, "hidden_size": 576,
                              "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                              "num_key_value_heads": 3, "tie_word_embeddings": True,
                              "max_position_embeddings": 8192},
}
_DECODERS = ("llama", "mistral", "qwen2", "qwen3")


# ---------------------------------------------------------------- model facts (no weights loaded)

def param_count(cfg: dict) -> int:
    """Parameters of a LLaMA-style decoder from its config: embeddings (+ an untied LM head), per layer the
    q/k/v/o projections (GQA), qwen2's q/k/v biases, qwen3's per-head q/k RMSNorms, the gated MLP (3 matrices)
    and 2 RMSNorms, then the final norm. Raises GramrError for another architecture."""
    if cfg.get("model_type") not in _DECODERS:
        raise GramrError(f"plan: cannot count the parameters of model_type {cfg.get('model_type')!r} from "
                         f"config.json; supported: {', '.join(_DECODERS)} (or a directory with safetensors)")
    h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or h // heads
    kv = cfg.get("num_key_value_heads") or heads
    attn = 2 * h * heads * hd + 2 * h * kv * hd
    if cfg["model_type"] == "qwen2" or cfg.get("attention_bias"):
        attn += (heads + 2 * kv) * hd
    if cfg["model_type"] == "qwen3":
        attn += 2 * hd
    layer = attn + 3 * h * cfg["intermediate_size"] + 2 * h
    embed = cfg["vocab_size"] * h
    return embed * (1 if cfg.get("tie_word_embeddings", True) else 2) + cfg["num_hidden_layers"] * layer + h


def lora_param_count(cfg: dict, r: int, targets: list[str]) -> int:
    """Trainable LoRA parameters: r·(in + out) per targeted projection per layer (q/k/v/o and the MLP's
    gate/up/down; other names are not counted)."""
    h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or h // heads
    kv = cfg.get("num_key_value_heads") or heads
    inter = cfg["intermediate_size"]
    shape = {"q_proj": (h, heads * hd), "k_proj": (h, kv * hd), "v_proj": (h, kv * hd), "o_proj": (heads * hd, h),
             "gate_proj": (h, inter), "up_proj": (h, inter), "down_proj": (inter, h)}
    return cfg["num_hidden_layers"] * sum(r * sum(shape[t]) for t in targets if t in shape)


def safetensors_params(model_dir: Path) -> int | None:
    """Exact parameter count from the safetensors headers (8-byte length + JSON; no tensor is read)."""
    files = sorted(model_dir.glob("model*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        total += sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return total


@dataclass
class ModelFacts:
    spec: str
    config: dict
    params: int
    params_source: str          # safetensors | config.json | known table
    tokenizer: object | None    # the real tokenizer when the model is local, else None (chars/4 estimate)


def model_facts(spec: str) -> ModelFacts:
    """Size and tokenizer of a model spec without loading weights (an embedded model is used only if it was
    converted already). Raises GramrError for a model neither local nor in KNOWN_MODELS."""
    s = str(spec)
    local = models.cache_dir() / "models" / s.split(":", 1)[1] if s.startswith("embedded:") else Path(s).expanduser()
    if (local / "config.json").exists():
        cfg = json.loads((local / "config.json").read_text())
        exact = safetensors_params(local)
        tok = models.load_tokenizer(str(local)) if (local / "tokenizer_config.json").exists() else None
        return ModelFacts(s, cfg, exact if exact is not None else param_count(cfg),
                          "safetensors" if exact is not None else "config.json", tok)
    if s in KNOWN_MODELS:
        return ModelFacts(s, KNOWN_MODELS[s], param_count(KNOWN_MODELS[s]), "known table", None)
    raise GramrError(f"plan: model {s!r} is not a local directory and not in the known-size table",
                     hint=f"plan with --model set to one of {', '.join(KNOWN_MODELS)} or a local HF directory")


# ---------------------------------------------------------------- schedule and memory

def optimizer_steps(n: int, batch_size: int, grad_accum: int, world: int, epochs: float, max_steps: int) -> dict:
    """The HF Trainer's schedule (transformers `set_initial_training_values`): micro-batches per rank =
    ceil(ceil(n / batch_size) / world) (accelerate's even batches), steps per epoch = ceil(that / grad_accum),
    total = max_steps when > 0, else ceil(epochs × steps per epoch)."""
    per_rank = math.ceil(math.ceil(n / batch_size) / world)
    per_epoch = max(math.ceil(per_rank / grad_accum), 1)
    steps = max_steps if max_steps > 0 else math.ceil(epochs * per_epoch)
    return {"global_batch": batch_size * grad_accum * world, "micro_batches_per_rank": per_rank,
            "steps_per_epoch": per_epoch, "steps": steps, "epochs": round(steps / per_epoch, 4)}


def tokens_processed(lengths: list[int], sched: dict, batch_size: int, grad_accum: int, world: int
                     ) -> tuple[int, bool]:
    """(non-padding tokens the run feeds, exact?). Whole epochs are exact; a partial epoch (max_steps, or a
    fractional `epochs`) is its share of micro-batches at the mean example length."""
    full, rest = divmod(sched["steps"], sched["steps_per_epoch"])
    total = sum(lengths)
    if rest == 0:
        return full * total, True
    micro = min(rest * grad_accum, sched["micro_batches_per_rank"])
    examples = min(micro * batch_size * world, len(lengths))
    return full * total + round(examples * total / max(len(lengths), 1)), False


def state_memory(params: int, trainable: int, gpus: int, zero: str) -> dict:
    """Per-GPU bytes of weights, gradients and AdamW state (activations not included).

    Per trainable parameter, mixed-precision AdamW as in the ZeRO paper (Rajbhandari et al. 2020): 2 bytes of
    bf16 weights + 2 of gradients + 12 of optimizer state (fp32 master weights, m, v) = 16. Frozen (LoRA base)
    weights: 4 bytes (our trainer loads fp32 weights). Stage 1 shards the optimizer state over the GPUs,
    stage 2 also the gradients, stage 3 and FSDP (full shard) everything."""
    if zero not in ZERO:
        raise GramrError(f"--zero: unknown {zero!r}; choose from {', '.join(ZERO)}")
    stage = 3 if zero == "fsdp" else int(zero)
    frozen = params - trainable
    w, g, o = 2.0 * trainable + 4.0 * frozen, 2.0 * trainable, 12.0 * trainable
    o /= gpus if stage >= 1 else 1
    g /= gpus if stage >= 2 else 1
    w /= gpus if stage >= 3 else 1
    return {"weights_gib": w / GIB, "gradients_gib": g / GIB, "optimizer_gib": o / GIB,
            "total_gib": (w + g + o) / GIB}
