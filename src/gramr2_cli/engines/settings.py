"""`generate.*`: the sampling and engine settings that every generating stage shares (a recipe's `generate`
section), with their checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import config
from . import ENGINE_NAMES

TRUNCATE_POLICIES = ("skip", "middle", "end")   # generate.truncate (`truncation`)
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class GenerateConfig:
    """Sampling and engine settings shared by every generating stage."""
    engine: str = "auto"              # auto = vllm when importable, else hf; openai = remote `vllm serve` endpoints
    max_new_tokens: int = 192
    temperature: float = 0.8
    top_p: float = 1.0
    batch_size: int = 16              # hf engine: prompts per forward batch (length-bucketed)
    dtype: str = "auto"               # auto = bf16 on GPU and for vllm on CPUs with native bf16, else float32
    tensor_parallel_size: int = 1     # vllm on GPUs
    gpu_memory_utilization: float = 0.85
    kv_cache_gb: int = 2              # vllm on CPU: VLLM_CPU_KVCACHE_SPACE
    verdict_only: bool = False        # judge without a rationale: forced `<answer>`, likelier of A/B (for models
                                      # trained with the `label` objective, the generative-RM baseline)
    truncate: str = "skip"            # a judge prompt longer than the context: skip (not judged) | middle | end
                                      # (trim the responses with a marker; `truncation`; ours, paper: not stated)
    retry_truncated_tokens: int = 0   # > max_new_tokens: judge samples cut off at max_new_tokens without a
                                      # verdict are generated once more with this budget; 0 = off (ours)
    endpoints: list[str] = field(default_factory=list)   # openai engine: base URLs, e.g. http://host:8000/v1
    max_concurrency: int = 8          # openai engine: requests in flight at most, over all endpoints (ours)
    request_timeout: float = 600.0    # openai engine: seconds per request before it is retried (ours)
    retries: int = 3                  # openai engine: retries on connection errors / timeouts / HTTP 5xx (ours)

    def check(self) -> list[str]:
        """Problems of this section (keys relative to `generate`); `engines.check_sampling` and
        `engines.resolve_choice` apply the same limits at run time."""
        engines = ("auto", *ENGINE_NAMES)
        return [
            *([] if self.engine in engines else
              [f"engine: unknown engine {self.engine!r}; choose from {', '.join(engines)}"]),
            *config.choice("dtype", self.dtype, DTYPES),
            *config.at_least("max_new_tokens", self.max_new_tokens, 1),
            *config.choice("truncate", self.truncate, TRUNCATE_POLICIES),
            *([] if self.retry_truncated_tokens == 0 or self.retry_truncated_tokens > self.max_new_tokens else
              [f"retry_truncated_tokens must be 0 (off) or more than max_new_tokens ({self.max_new_tokens}), "
               f"got {self.retry_truncated_tokens}"]),
            *config.at_least("temperature", self.temperature, 0),
            *config.within("top_p", self.top_p, 0.0, 1.0, open_low=True),
            *config.at_least("batch_size", self.batch_size, 1),
            *config.at_least("tensor_parallel_size", self.tensor_parallel_size, 1),
            *config.within("gpu_memory_utilization", self.gpu_memory_utilization, 0.0, 1.0, open_low=True),
        ]
