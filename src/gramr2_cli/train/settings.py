"""`train.*`: the trainer core's settings (the recipe's `train` section, DESIGN §5) and their checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import config
from .objectives import OBJECTIVES

PRECISIONS = ("auto", "fp32", "bf16")   # what `core.precision_flags` turns into TrainingArguments flags


@dataclass
class LoraConfig:
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])

    def check(self) -> list[str]:
        """Problems of this section (keys relative to `train.lora`)."""
        return [*config.at_least("r", self.r, 1),
                *config.within("dropout", self.dropout, 0.0, 1.0, open_high=True)]


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
    init: str = "backbone"            # backbone (= --model) | a model directory; `continue` is read as backbone
    precision: str = "auto"           # auto = bf16 on GPU and on CPUs with native bf16 (AMX/AVX512-BF16), else fp32
    packing: bool = False             # one row per micro-batch, block-diagonal mask (ours; pays with flash-attn,
                                      # not with CPU SDPA: benchmarks/README.md)
    merge_lora: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)
    trainable_layers: int = 0         # 0 = every weight; N = only the top N transformer blocks and the final norm
                                      # (ours; paper: not stated): the backward pass stops below them, so a step
                                      # costs less on a CPU (docs/notes/learnability.md)

    def check(self) -> list[str]:
        """Problems of this section (keys relative to `train`; `lora` checks itself)."""
        return [
            *config.choice("objective", self.objective, OBJECTIVES),
            *config.choice("precision", self.precision, PRECISIONS),
            *config.at_least("batch_size", self.batch_size, 1),
            *config.at_least("grad_accum", self.grad_accum, 1),
            *config.at_least("max_length", self.max_length, 1),
            *config.at_least("trainable_layers", self.trainable_layers, 0),
            *(["trainable_layers: choose either train.trainable_layers or train.lora.enabled, not both"]
              if self.trainable_layers and self.lora.enabled else []),
            *config.within("warmup_ratio", self.warmup_ratio, 0.0, 1.0, open_high=True),
            # the paper's ε: targets (1-ε, ε) must still prefer the labelled side
            *config.within("label_smoothing", self.label_smoothing, 0.0, 0.5, open_high=True),
        ]
