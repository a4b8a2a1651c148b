"""The `openai` engine: the `vllm` engine's logic over HTTP, against one or more OpenAI-compatible endpoints.

How self-label / prove / rank scale past one machine without a cluster scheduler: start `vllm serve MODEL` on
each machine (fp32 or bf16, as you would load it in-process) and pass the endpoints, e.g.
`--engine openai -s generate.endpoints=[http://gpu1:8000/v1,http://gpu2:8000/v1]`.

Why a subclass of `VLLMEngine`: every output this engine returns is built by the same code as the in-process
vLLM engine (`generate`, `score`, `answer_probs`, the answer-position logic, the fallback scoring pass), only the
transport differs: `_run` turns each request's sampling settings into a `/v1/completions` request with the prompt
as token ids (tokenized here exactly as the other engines do), and the reply back into the shape `vllm.LLM`
returns. So the two engines agree by construction (tested against a real `vllm serve`), and vLLM need not be
installed on the client. The tokenizer comes from the local model spec; the server must serve the same model.

- Requests: one per prompt (each prompt has its own seed, `row_seed`), sent round-robin over the endpoints by a
  pool of `max_concurrency` threads. vLLM extras used: `return_token_ids`, `return_tokens_as_token_ids` (log-
  probabilities keyed by token id), `prompt_logprobs` (teacher-forced scoring), `stop_token_ids`, `ignore_eos`;
  `top_k`, `min_p` and the penalties are sent at their neutral values so a server's generation-config defaults
  cannot change the sampling.
- Failures: connection errors, timeouts and HTTP 5xx are retried `retries` times with exponential backoff
  (`backoff_s`·2^k), each retry going to the next endpoint; a 4xx is the request's fault and fails at once.
  Either way the error is a GramrError naming the endpoint.
- `OPENAI_API_KEY`, when set, is sent as a bearer token (`vllm serve --api-key`).
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .. import models
from ..errors import GramrError
from . import forget, note, stop_ids
from .vllm import VLLMEngine

NEUTRAL = {"top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}
VLLM_ONLY = ("detokenize",)       # SamplingParams fields the HTTP API does not take


# ---------------------------------------------------------------- the shapes `vllm.LLM.generate` returns

@dataclass
class Logprob:
    logprob: float


@dataclass
class Completion:
    token_ids: list[int]
    logprobs: list[dict[int, Logprob]] | None


@dataclass
class RequestOutput:
    outputs: list[Completion]
    prompt_logprobs: list[dict[int, Logprob] | None] | None = None


def _token_id(key: str) -> int:
    if not key.startswith("token_id:"):
        raise GramrError(f"the endpoint returned a token {key!r} instead of 'token_id:N'",
                         hint="the openai engine needs vLLM's OpenAI server (return_tokens_as_token_ids)")
    return int(key.split(":", 1)[1])


def parse_choice(choice: dict) -> Completion:
    """A `/v1/completions` choice → `Completion`: token ids and, per step, {token id: log-probability} for the
    sampled token and the top-k alternatives."""
    lp = choice.get("logprobs")
    ids = choice.get("token_ids")
    if ids is None:
        ids = [_token_id(t) for t in (lp or {}).get("tokens", [])]
    steps = None
    if lp is not None:
        steps = []
        for tok, tok_lp, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
            step = {_token_id(k): Logprob(v) for k, v in (top or {}).items()}
            step[_token_id(tok)] = Logprob(tok_lp)
            steps.append(step)
    return Completion(list(ids), steps)


def parse_response(body: dict) -> RequestOutput:
    """One prompt's `/v1/completions` reply → `RequestOutput` (choices in index order)."""
    choices = sorted(body["choices"], key=lambda c: c["index"])
    plp = choices[0].get("prompt_logprobs") if choices else None
    prompt_lps = None if plp is None else [
        None if step is None else {int(k): Logprob(v["logprob"]) for k, v in step.items()} for step in plp]
    return RequestOutput([parse_choice(c) for c in choices], prompt_lps)


def request_body(model: str, prompt_ids: list[int], params: dict) -> dict:
    """The `/v1/completions` JSON for one prompt, from the keyword arguments the vllm engine builds
    `SamplingParams` with."""
    body = {"model": model, "prompt": list(prompt_ids), **NEUTRAL,
            "return_token_ids": True, "return_tokens_as_token_ids": True}
    body.update({k: v for k, v in params.items() if k not in VLLM_ONLY and v is not None})
    return body


def _model_eos(path: str) -> int | list[int] | None:
    """The model's `eos_token_id` from its config.json (what vLLM stops on), when the spec is a local dir."""
    cfg = Path(path) / "config.json"
    return json.loads(cfg.read_text()).get("eos_token_id") if cfg.exists() else None


# ---------------------------------------------------------------- the engine

@dataclass
class Transport:
    """Round-robin HTTP POSTs with bounded concurrency and retries (thread-safe)."""
    endpoints: list[str]
    max_concurrency: int = 8
    timeout: float = 600.0
    retries: int = 3
    backoff_s: float = 0.5
    requests_sent: list[int] = field(default_factory=list)   # per endpoint, tries included

    def __post_init__(self):
        self.pool = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="gramr2-http")
        self.slots = itertools.count()
        self.lock = threading.Lock()
        self.requests_sent = [0] * len(self.endpoints)
        key = os.environ.get("OPENAI_API_KEY")
        self.headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}

    def call(self, path: str, body: dict | None, slot: int) -> dict:
        """GET (body None) or POST `path` on endpoint `slot` mod n; a failed try moves on to the next one."""
        last = ""
        for attempt in range(self.retries + 1):
            k = (slot + attempt) % len(self.endpoints)
            url = self.endpoints[k] + path
            with self.lock:
                self.requests_sent[k] += 1
            data = None if body is None else json.dumps(body).encode("utf-8")
            req = urllib.request.Request(url, data=data, headers=self.headers, method="GET" if body is None else "POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    return json.loads(r.read())
            except urllib.error.HTTPError as e:
                detail = e.read().decode("utf-8", "replace")[:300]
                if e.code < 500:
                    raise GramrError(f"{url}: HTTP {e.code}: {detail}") from None
                last = f"{url}: HTTP {e.code}: {detail}"
            except (urllib.error.URLError, OSError) as e:       # refused, reset, DNS, timeouts
                last = f"{url}: {getattr(e, 'reason', e)}"
            if attempt < self.retries:
                time.sleep(self.backoff_s * 2 ** attempt)
        raise GramrError(f"request failed after {self.retries + 1} tries; last: {last}",
                         hint="is `vllm serve` running there? see generate.endpoints / generate.retries")

    def map(self, path: str, bodies: list[dict]) -> list[dict]:
        """POST every body (in order of `bodies`, round-robin over endpoints); replies in the same order."""
        futures = [self.pool.submit(self.call, path, b, next(self.slots)) for b in bodies]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _normalise(url: str) -> str:
    url = str(url).strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise GramrError(f"generate.endpoints: {url!r} is not an http(s) URL",
                         hint="e.g. -s generate.endpoints=[http://127.0.0.1:8000/v1]")
    return url


class RemoteEngine(VLLMEngine):
    """`VLLMEngine` whose `LLM.generate` is a fleet of OpenAI-compatible endpoints (see the module docstring)."""

    name = "openai"

    def __init__(self, model_path: str, endpoints: list[str], *, max_concurrency: int = 8,
                 request_timeout: float = 600.0, retries: int = 3, backoff_s: float = 0.5):
        """Loads the tokenizer and asks every endpoint which model it serves (GET /models). Raises GramrError
        without endpoints, for a bad URL or setting, an unreachable endpoint, or endpoints serving different
        models."""
        if not endpoints:
            raise GramrError("the openai engine needs generate.endpoints",
                             hint="e.g. -s generate.endpoints=[http://127.0.0.1:8000/v1] (start `vllm serve` there)")
        if max_concurrency < 1 or retries < 0 or request_timeout <= 0:
            raise GramrError("generate.max_concurrency must be >= 1, generate.retries >= 0 and "
                             "generate.request_timeout > 0")
        self.model_path = str(model_path)
        self.dtype = "server"
        self.transport = Transport([_normalise(u) for u in endpoints], max_concurrency, request_timeout, retries,
                                   backoff_s)
        self.tokenizer = models.load_tokenizer(self.model_path)
        self.stops = stop_ids(self.tokenizer, _model_eos(self.model_path))
        self._SamplingParams = dict        # `generate`/`score` build keyword dicts; `_run` sends them
        self.llm = None
        served = [self.transport.call("/models", None, k)["data"][0] for k in range(len(endpoints))]
        names = {m["id"] for m in served}
        if len(names) != 1:
            raise GramrError(f"generate.endpoints serve different models: {', '.join(sorted(names))}")
        self.served_model = names.pop()
        lens = [m["max_model_len"] for m in served if m.get("max_model_len")]
        self.context_length = min(lens) if lens else None
        self.transport.requests_sent = [0] * len(endpoints)
        note(f"openai engine: {len(endpoints)} endpoint(s) serving {self.served_model}, "
             f"{max_concurrency} requests in flight at most")

    def _run(self, token_prompts: list[list[int]], params) -> list[RequestOutput]:
        per = params if isinstance(params, list) else [params] * len(token_prompts)
        bodies = [request_body(self.served_model, ids, p) for ids, p in zip(token_prompts, per)]
        return [parse_response(r) for r in self.transport.map("/completions", bodies)]

    def close(self) -> None:
        """Stop the request threads and drop the engine from `load_engine`'s cache (the servers keep running)."""
        forget(self)
        self.transport.close()
