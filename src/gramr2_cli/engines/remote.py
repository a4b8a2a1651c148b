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
- Failures: connection errors, timeouts, HTTP 5xx and protocol errors (a reply that is not JSON, an HTML page
  with status 200, a completion without `choices`/`index`/`logprobs`, a connection closed mid-body, or the wrong
  number of choices for `n`) are retried `retries` times with exponential backoff (`backoff_s`·2^k), each retry
  going to the next endpoint; a 4xx is the request's fault and fails at once. Either way the error is one
  GramrError naming the endpoint, and the batch it belonged to is not written (a rerun resumes it). A reply is
  never padded: fewer or more choices than asked never become votes.
- Deadlines and interruption: `request_timeout` bounds a whole exchange (connect, send, every byte of the reply),
  not each socket read. Ctrl-C / SIGTERM, or one request's final failure, closes every connection of the batch
  at once (`Transport.map`), so the stage exits within about a second instead of waiting for the network.
- At start every endpoint is asked `GET /models` itself (retried on that endpoint only): one that does not answer
  is an error naming it, never silently skipped.
- `OPENAI_API_KEY`, when set, is sent as a bearer token (`vllm serve --api-key`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..core import models
from ..core.errors import GramrError
from . import forget, note, stop_ids
from .transport import ProtocolError, Transport, decode
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


def checked_response(data: bytes, request: dict) -> RequestOutput:
    """One `/v1/completions` reply → `RequestOutput`, checked against its request: exactly `n` choices with
    indexes 0..n-1 (an endpoint that ignores `n` must not turn one sample into n agreeing votes), log-probabilities
    for every generated token when asked, and a prompt log-probability for every prompt token when asked.
    Raises ProtocolError."""
    body = decode(data)
    try:
        out = parse_response(body)
        got = sorted(c["index"] for c in body["choices"])
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:   # GramrError is a ValueError
        raise ProtocolError(f"malformed completion ({type(e).__name__}: {e})") from None
    n = request.get("n", 1)
    if len(out.outputs) != n or got != list(range(n)):
        raise ProtocolError(f"{len(out.outputs)} choice(s) (indexes {got[:8]}) for n={n}: a server or proxy that "
                            "ignores n would turn one sample into n agreeing votes")
    if request.get("logprobs") is not None and any(
            c.logprobs is None or len(c.logprobs) != len(c.token_ids)
            or any(t not in step for step, t in zip(c.logprobs, c.token_ids)) for c in out.outputs):
        raise ProtocolError("a choice without a log-probability for each generated token")
    if request.get("prompt_logprobs") is not None:
        ids, plp = request["prompt"], out.prompt_logprobs
        if plp is None or len(plp) != len(ids) or any(plp[q] is None or ids[q] not in plp[q]
                                                      for q in range(1, len(ids))):
            raise ProtocolError("prompt_logprobs missing or not one per prompt token")
    return out


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
        if not len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(ids):
            raise ValueError("logprobs lists of different lengths")
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
        served = [self._model_of(k) for k in range(len(endpoints))]
        names = {m["id"] for m in served}
        if len(names) != 1:
            raise GramrError(f"generate.endpoints serve different models: {', '.join(sorted(names))}")
        self.served_model = names.pop()
        lens = [m["max_model_len"] for m in served if m.get("max_model_len")]
        self.context_length = min(lens) if lens else None
        self.transport.requests_sent = [0] * len(endpoints)
        note(f"openai engine: {len(endpoints)} endpoint(s) serving {self.served_model}, "
             f"{max_concurrency} requests in flight at most")

    def _model_of(self, k: int) -> dict:
        """Endpoint k's `GET /models` entry, asked of that endpoint alone (retried, never answered by another).
        Raises GramrError naming it when it does not answer: a dead endpoint is an error at start."""
        def parse(data: bytes, _) -> dict:
            models_ = decode(data).get("data")
            if not isinstance(models_, list) or not models_ or not isinstance(models_[0], dict) \
                    or not isinstance(models_[0].get("id"), str):
                raise ProtocolError("GET /models has no model in 'data'")
            return models_[0]
        try:
            return self.transport.call("/models", None, k, parse, failover=False)
        except GramrError as e:
            self.transport.close()
            raise GramrError(f"endpoint {self.transport.endpoints[k]} is not usable at start: {e.message}",
                             hint="start `vllm serve` there, or leave it out of generate.endpoints") from None

    def generate(self, prompts: list[str], **kw) -> list[list]:
        """`VLLMEngine.generate` over the fleet, without `body_logprob`: a server started with
        `--logprobs-mode processed_logprobs` reports sampled log-probabilities after temperature, so callers that
        need log p under the model (`prove`, Eq. 5) score the text instead."""
        out = super().generate(prompts, **kw)
        for gens in out:
            for g in gens:
                g.body_logprob = None
        return out

    def _run(self, token_prompts: list[list[int]], params) -> list[RequestOutput]:
        per = params if isinstance(params, list) else [params] * len(token_prompts)
        bodies = [request_body(self.served_model, ids, p) for ids, p in zip(token_prompts, per)]
        return self.transport.map("/completions", bodies, checked_response)

    def close(self) -> None:
        """Stop the request threads and drop the engine from `load_engine`'s cache (the servers keep running)."""
        forget(self)
        self.transport.close()
