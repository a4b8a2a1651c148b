"""Generation engines (DESIGN §4): one protocol, two implementations with the same outputs.

`hf` (batched transformers) is the fallback and the test reference; `vllm` is the engine for heavy generation.
Prompts given to an engine are already rendered through the chat template (`prompts.render`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass
class Generation:
    text: str
    num_tokens: int
    sum_logprob: float
    mean_logprob: float
    finish_reason: str = "stop"                 # stop | length
    ab_probs: tuple[float, float] | None = None  # P(A), P(B) at the answer position, normalised over the two


class Engine(Protocol):
    name: str
    tokenizer: object

    def generate(self, prompts: list[str], *, n: int = 1, temperature: float = 0.0, max_new_tokens: int = 128,
                 seed: int = 0, top_p: float = 1.0, answer_token_probs: bool = False) -> list[list[Generation]]:
        """`n` generations per prompt, in prompt order."""
        ...

    def score(self, prompts: list[str], continuations: list[str]) -> list[float]:
        """sum log p(continuation | prompt) per pair, teacher-forced."""
        ...

    def close(self) -> None: ...


def load_engine(model: str, gen_cfg, seed: int = 0) -> Engine:
    """Engine chosen by `gen_cfg.engine` (auto = vllm when importable, else hf). (not built yet)"""
    from ..errors import NotBuiltError
    raise NotBuiltError("engines: not built yet")
