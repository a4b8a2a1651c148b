"""Generation engines (DESIGN §4): one protocol, two implementations with the same outputs.

`hf` (batched transformers) is the fallback and the test reference; `vllm` is the engine for heavy generation.
Prompts given to an engine are already rendered through the chat template (`prompts.render`).

Conventions both engines share (docs/engines.md), defined once here so they cannot drift apart:
- tokenization: `encode(tok, prompt) + encode(tok, continuation)`, each with `add_special_tokens=False`, never
  the tokenization of the concatenated text; special tokens only where the chat template wrote them, so a
  special-token string inside a prompt or response is plain text (`rendering`, docs/security.md);
- per-prompt sampling seeds (`row_seed`): a prompt's samples depend on the call's seed, its text and the sample
  index, not on what else is in the batch;
- log-probabilities are `log_softmax` of the raw logits (temperature 1, before top-p), vLLM's default;
- the answer position (`answer_position`): the token right after the first `<answer>` + whitespace.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import sys
from dataclasses import dataclass
from typing import Protocol

from ..core import hardware, prompts, rendering
from ..core.errors import GramrError


@dataclass
class Generation:
    text: str
    num_tokens: int
    sum_logprob: float
    mean_logprob: float
    finish_reason: str = "stop"                 # stop | length
    ab_probs: tuple[float, float] | None = None  # P(A), P(B) at the answer position, normalised over the two
    body_logprob: float | None = None           # sum log p of the tokens of `text` (the stop token left out), raw
                                                # logits (temperature 1), as `score(prompt, text)`; None = unknown


class Engine(Protocol):
    """What every caller may use of an engine; nothing else is reached for (no `getattr` probing)."""
    name: str
    tokenizer: object                   # a HF tokenizer (callers render prompts and count tokens with it)
    context_length: int | None          # most tokens (prompt + reply) the model takes; None = unknown

    def generate(self, prompts: list[str], *, n: int = 1, temperature: float = 0.0, max_new_tokens: int = 128,
                 seed: int = 0, top_p: float = 1.0, answer_token_probs: bool = False) -> list[list[Generation]]:
        """`n` generations per prompt, in prompt order."""
        ...

    def score(self, prompts: list[str], continuations: list[str]) -> list[float]:
        """sum log p(continuation | prompt) per pair, teacher-forced."""
        ...

    def answer_probs(self, prompts: list[str], continuations: list[str]) -> list[tuple[float, float] | None]:
        """(P(A), P(B)) at the answer position of each forced continuation (`forced_answer_probs`); None where
        the continuation has no `<answer>`."""
        ...

    def close(self) -> None:
        """Free the model (and drop it from `load_engine`'s cache); the engine is unusable after."""
        ...


ENGINE_NAMES = ("hf", "vllm", "openai")   # openai: remote OpenAI-compatible endpoints (engines/remote.py)


# ---------------------------------------------------------------- shared conventions

def encode(tokenizer, text: str) -> list[int]:
    """Token ids of already-rendered text: no BOS/EOS added (the chat template wrote what it wants); special-token
    ids only where the chat template wrote them (`rendering.encode`: untrusted text stays plain text)."""
    return rendering.encode(tokenizer, text)


def stop_ids(tokenizer, model_eos: int | list[int] | None = None) -> list[int]:
    """Token ids that end a generation: the tokenizer's EOS, `<|im_end|>` when the vocabulary has it, and the
    model's generation-config EOS ids."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    if model_eos is not None:
        ids.update([model_eos] if isinstance(model_eos, int) else model_eos)
    return sorted(ids)


def row_seed(seed: int, prompt: str, sample: int | None = None) -> int:
    """The seed of one prompt's sample stream (63 bits): same (seed, prompt, sample) → same draws."""
    key = f"{seed}\x1f{prompt}" + ("" if sample is None else f"\x1f{sample}")
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little") & (2**63 - 1)


def answer_position(tokenizer, ids: list[int]) -> tuple[int, int, int] | None:
    """Where the verdict is read in a generated/forced token sequence: `(k, id_a, id_b)`.

    `k` is the index in `ids` of the token holding the first non-whitespace character after the first `<answer>`
    in the decoded text (special tokens kept); the verdict's probability is the model's distribution at step k
    (given the prompt and `ids[:k]`). `id_a`/`id_b` are that token with its verdict letter replaced by A/B,
    i.e. the plain "A"/"B" tokens, or e.g. " A"/" B" when the tokenizer merged a space into the verdict.
    None when there is no `<answer>`, nothing follows it, or the A/B variants are not single tokens.
    """
    full = tokenizer.decode(ids, skip_special_tokens=False)
    i = full.find(prompts.ANSWER_OPEN)
    if i < 0:
        return None
    j = i + len(prompts.ANSWER_OPEN)
    while j < len(full) and full[j].isspace():
        j += 1
    if j >= len(full):
        return None
    lo, hi = 0, len(ids) - 1       # smallest k with len(decode(ids[:k+1])) > j
    while lo < hi:
        mid = (lo + hi) // 2
        if len(tokenizer.decode(ids[:mid + 1], skip_special_tokens=False)) > j:
            hi = mid
        else:
            lo = mid + 1
    k = lo
    start = len(tokenizer.decode(ids[:k], skip_special_tokens=False))
    lead = full[start:j]           # what token k holds before the verdict letter (usually "")
    pair = [encode(tokenizer, lead + letter) for letter in ("A", "B")]
    if any(len(p) != 1 for p in pair):
        return None
    return k, pair[0][0], pair[1][0]


def ab_normalise(logp_a: float, logp_b: float) -> tuple[float, float]:
    """(P(A), P(B)) renormalised over the two tokens, from their log-probabilities."""
    m = max(logp_a, logp_b)
    ea, eb = math.exp(logp_a - m), math.exp(logp_b - m)
    return ea / (ea + eb), eb / (ea + eb)


def forced_answer_probs(tokenizer, next_logprobs, prompts: list[str], continuations: list[str]
                        ) -> list[tuple[float, float] | None]:
    """(P(A), P(B)) at the answer position (`answer_position`) of each forced continuation; None where it has
    no `<answer>`. `next_logprobs(seqs, token_sets)` is the engine's log p(t | seq) for each t in token_sets[i]."""
    seqs, sets, ok = [], [], []
    for p, c in zip(prompts, continuations, strict=True):
        cont = encode(tokenizer, c)
        where = answer_position(tokenizer, cont) if cont else None
        ok.append(where is not None)
        if where is not None:
            k, a, b = where
            seqs.append(encode(tokenizer, p) + cont[:k])
            sets.append([a, b])
    lps = iter(next_logprobs(seqs, sets)) if seqs else iter(())
    return [ab_normalise(*next(lps)) if good else None for good in ok]


def check_sampling(n: int, temperature: float, top_p: float, max_new_tokens: int) -> None:
    """Raises GramrError for sampling settings no engine accepts."""
    if n < 1:
        raise GramrError(f"the number of samples n must be >= 1, got {n}")
    if temperature < 0:
        raise GramrError(f"generate.temperature must be >= 0 (0 = greedy), got {temperature}")
    if not 0.0 < top_p <= 1.0:
        raise GramrError(f"generate.top_p must be in (0, 1], got {top_p}")
    if max_new_tokens < 1:
        raise GramrError(f"generate.max_new_tokens must be >= 1, got {max_new_tokens}")


def finish(tokenizer, ids: list[int], logps: list[float], stops: set[int], ignore_eos: bool,
           ab: tuple[float, float] | None) -> Generation:
    """A Generation from sampled ids and their log-probabilities (the stop token counts as a sampled token)."""
    stopped = bool(ids) and ids[-1] in stops and not ignore_eos
    body = ids[:-1] if stopped else ids
    total = float(sum(logps))
    return Generation(text=tokenizer.decode(body, skip_special_tokens=True), num_tokens=len(ids),
                      sum_logprob=total, mean_logprob=total / max(len(ids), 1),
                      finish_reason="stop" if stopped else "length", ab_probs=ab,
                      body_logprob=float(sum(logps[:len(body)])))


# ---------------------------------------------------------------- loading

_LOADED: dict[tuple, object] = {}


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def resolve_choice(engine: str, dtype: str) -> tuple[str, str]:
    """(engine, dtype) after `auto`: vllm when importable else hf; bfloat16 on a GPU and for vllm on a CPU with
    native bf16 (AMX: 2-2.5× fp32), float32 otherwise (emulated bf16 is ~25× slower: `hardware.py`). Raises
    GramrError for unknown names."""
    if engine == "auto":
        engine = "vllm" if vllm_available() else "hf"
    if engine not in ENGINE_NAMES:
        raise GramrError(f"unknown engine {engine!r}; choose from auto, {', '.join(ENGINE_NAMES)}")
    if dtype == "auto":
        native = engine == "vllm" and hardware.cpu_native_bf16()
        dtype = "bfloat16" if _cuda() or native else "float32"
    if dtype not in ("float32", "bfloat16", "float16"):
        raise GramrError(f"generate.dtype: unknown dtype {dtype!r}; choose from auto, float32, bfloat16, float16")
    return engine, dtype


def load_engine(model: str, gen_cfg, seed: int = 0) -> Engine:
    """The engine for `model` chosen by `gen_cfg.engine` (auto = vllm when importable, else hf).

    One engine per (model path, engine, dtype) per process: a second call returns the cached one (a vLLM start
    on CPU: ~6 s after a ~13 s import); `engine.close()` frees it and drops it from the cache. Other settings of a
    cached engine (kv cache size, parallelism) are those of its first load; the hf batch size follows `gen_cfg`.
    Raises GramrError for an unknown model/engine/dtype or a missing vllm install.
    """
    from ..core import models

    path = models.resolve(model)
    name, dtype = resolve_choice(gen_cfg.engine, gen_cfg.dtype)
    key = (path, name, dtype, *(gen_cfg.endpoints if name == "openai" else ()))
    eng = _LOADED.get(key)
    if eng is None:
        if name == "hf":
            from .hf import HFEngine
            eng = HFEngine(path, dtype=dtype, batch_size=gen_cfg.batch_size)
        elif name == "openai":
            from .remote import RemoteEngine
            eng = RemoteEngine(path, gen_cfg.endpoints, max_concurrency=gen_cfg.max_concurrency,
                               request_timeout=gen_cfg.request_timeout, retries=gen_cfg.retries)
        else:
            from .vllm import VLLMEngine
            eng = VLLMEngine(path, dtype=dtype, seed=seed, kv_cache_gb=gen_cfg.kv_cache_gb,
                             tensor_parallel_size=gen_cfg.tensor_parallel_size,
                             gpu_memory_utilization=gen_cfg.gpu_memory_utilization)
        _LOADED[key] = eng
    elif name == "hf":
        eng.batch_size = gen_cfg.batch_size
    return eng


def forget(engine) -> None:
    """Drop `engine` from the load cache (called by each engine's `close()`)."""
    for key in [k for k, e in _LOADED.items() if e is engine]:
        del _LOADED[key]


def close_all() -> None:
    """Close every cached engine (end of a pipeline, tests)."""
    for eng in list(_LOADED.values()):
        eng.close()


def note(msg: str) -> None:
    """One status line on stderr (stdout is for data)."""
    print(msg, file=sys.stderr, flush=True)
