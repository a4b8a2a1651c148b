"""serve: an HTTP reward server for RLHF (FastAPI + uvicorn), with micro-batching across clients.

Rewards come from `group_rewards` (one path for every endpoint and framework): the items of a request are grouped
by prompt and each group is scored with `serve.pairing` (default `reference`: GRAM v1's RLHF reward of y
against a reference y_ref (GRAM v1's RLHF scheme; GRAM-R² specifies none),
r(x, y) = ½ [P(A | x, y, y_ref) + P(B | x, y_ref, y)] with `orders: both`;
`round_robin`/`circular`/`knockout` compare a prompt's rollouts with each other, ours). A failed judgment is
masked, never a neutral 0.5; a comparison with one order failed is masked as a whole.

Endpoints (JSON in, JSON out; a bad request gets a 4xx and one-line `detail`, and the server keeps serving):
- `POST /score`      {"prompt": [..], "response": [..], "reference": [..] (pairing reference)}
                     → {"rewards": [float or null], "judge_calls", "failed_calls"}
- `POST /get_reward` OpenRLHF's remote RM: {"query": [..], "prompts": [..], "labels": [..]} → {"rewards",
  "scores", "masked"}: `query[i]` is prompt + response, `labels[i]` the reference; the question is the prompt
  without the policy's chat template (`serve_requests.question_of`); a masked reward is its group's mean.
- `POST /compare`    {"pairs": [{"prompt", "response_a", "response_b"}, ..]} (or the three parallel lists)
                     → {"verdicts", "p_a", "rationales", "order_consistent", "votes"}
- `GET /health`      status, model, batching counters, judge calls/failures/seconds of the reward path,
                     `flagged_items`: items whose response carried template tokens, verdict tags, template
                     markers or verdict claims (`flagged_by_endpoint`: the same per endpoint), masked-reward
                     accounting (`masked_rewards`, `scored_rewards`, `masked_chars_mean`, `scored_chars_mean`)
                     and `in_flight`/`max_in_flight`: reward requests being scored at once (now, at most).

Every scoring endpoint also returns `flags`: per item, the suspicious strings found in its response(s)
(`flags.suspicious`; ours, issue 16). They are reported, not acted on: such text reaches the judge as plain text,
the judge's own markup neutralised (docs/security.md), and the reward is computed as for any other response.

Hardening: beyond loopback an API key is required (`Authorization: Bearer`, else 401); prompt tokens per item
are limited (413), judge comparisons per request too (`max_judge_pairs`, 413), each request has a deadline (504,
and its judge work still queued is dropped), a body with a lone surrogate or nesting deeper than Python's stack
is a 400, and SIGTERM lets in-flight batches finish.
Micro-batching (`serve_batching.py`): every request's pairs go into one queue in chunks of at most `max_batch`; a
background task takes what arrived within `max_wait_ms` of the first, up to `max_batch` pairs, and makes one
engine call in a worker thread (the event loop stays free to accept more requests). `create_app(engine, cfg)`
builds the app in-process for tests.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' `request: Request` annotations, and
# Request is imported inside create_app (so importing this module for ServeConfig stays cheap).
import asyncio
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import runner
from ..core import config, flags, prompts
from ..core.errors import GramrError
from ..judging import group_rewards, judge
from .serve_batching import MicroBatcher
from .serve_requests import (
    LOOPBACK,
    TEMPLATE_NAMES,
    authorized,
    check_tokens,
    compare_pairs,
    http,
    question_of,
    read_json,
    split_query,
    str_lists,
)

if TYPE_CHECKING:
    from ..recipe import Config

API_KEY_ENV = "GRAMR2_API_KEY"


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"         # loopback only unless told otherwise (then an API key is required)
    port: int = 8000
    max_batch: int = 16             # most judge pairs per engine call
    max_wait_ms: int = 20           # how long the first request of a batch waits for company
    max_body_bytes: int = 1_000_000
    max_items: int = 1024           # most items in one request
    max_prompt_tokens: int = 4096   # most tokens of one item's question + responses (413 above; 0 = no limit; ours)
    request_timeout: float = 300.0  # seconds a request may take before it gets 504; its queued work is dropped (ours)
    max_judge_pairs: int = 4096     # most judge comparisons one request may cause (413 above; ours): 64 rollouts
                                    # of one prompt under round_robin with orders both are 64·63 = 4032
    votes: int = 1                  # voting@k per order (k > 1 samples at generate.temperature)
    orders: str = "both"            # both = averaged over presentation orders (cancels position bias); or ab
    tie_break: bool = True
    pairing: str = "reference"      # group reward pairing: reference | round_robin | circular | knockout
    score: str = "p_a"              # group reward score: p_a | win_rate | bt (group_rewards.GroupConfig)
    policy_template: str = "auto"   # /get_reward: the policy's chat template to strip (auto|none|chatml|llama3|gemma)
    strip_tokens: list[str] = field(default_factory=list)   # /get_reward: more trailing tokens to strip

    def check(self) -> list[str]:
        """Problems of this section (keys relative to `serve`)."""
        return [*config.within("port", self.port, 1, 65535), *config.at_least("votes", self.votes, 1),
                *config.choice("orders", self.orders, judge.ORDERS),
                *config.at_least("max_batch", self.max_batch, 1), *config.at_least("max_wait_ms", self.max_wait_ms, 0),
                *config.at_least("max_body_bytes", self.max_body_bytes, 1),
                *config.at_least("max_items", self.max_items, 1),
                *config.at_least("max_prompt_tokens", self.max_prompt_tokens, 0),
                *config.at_least("max_judge_pairs", self.max_judge_pairs, 1),
                *config.within("request_timeout", self.request_timeout, 0, float("inf"), open_low=True),
                *config.choice("policy_template", self.policy_template, TEMPLATE_NAMES),
                *group_rewards.scoring_problems(self.pairing, self.score)]


def group_config(sc: ServeConfig) -> group_rewards.GroupConfig:
    return group_rewards.GroupConfig(pairing=sc.pairing, orders=sc.orders, score=sc.score, votes=sc.votes)


def judge_fn(engine, cfg: "Config", orders: str) -> Callable[[list[dict]], list[judge.Judgment]]:
    """pairs → judgments with the server's settings (serve.votes, serve.tie_break) in `orders`."""
    sc = cfg.serve
    how = judge.settings(cfg, "serve", votes=sc.votes, orders=orders, tie_break=sc.tie_break)
    return lambda pairs: how.judge(engine, pairs)


def rationale_of(j: judge.Judgment) -> str | None:
    """The rationale of a sample shown in the original order whose verdict is the label (a swapped-order
    sample's "Response A" is the original B); None without a label (issue 17 item 9)."""
    if j.label is None:
        return None
    return next((prompts.parse_rationale(s["text"]) for s in j.samples
                 if s["order"] == "ab" and s["verdict"] == j.label), None)


class TooMuchWork(GramrError):
    """A request that would cause more than `serve.max_judge_pairs` judge comparisons (413)."""


class PastDeadline(GramrError):
    """The reward path's judge work outlived the request's deadline or the request went away (504). Raised in the
    worker thread instead of the cancelled future's CancelledError, which would cancel the endpoint from inside
    and leave the client without any response when it won the race against the middleware's own timeout."""


# ---------------------------------------------------------------- the app

def create_app(engine, cfg: "Config", model_name: str | None = None, api_key: str | None = None,
               on_shutdown: Callable[[], None] | None = None):
    """The FastAPI app serving `engine` with `cfg` (prompt version, generate.*, seed, serve.*); with `api_key`,
    every request needs `Authorization: Bearer <api_key>` (401 otherwise). `on_shutdown` runs after the
    batchers have finished their work (serve closes the engine there: uvicorn re-raises SIGTERM afterwards).

    Longer than our ~60-line rule on purpose: FastAPI routes are closures over this app's engine, batchers and
    counters, so each route (a few lines; the request parsing lives in `serve_requests`) is defined here."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    sc = cfg.serve
    config.ensure(sc, "serve.")
    gcfg = group_config(sc)
    compare_batcher = MicroBatcher(judge_fn(engine, cfg, sc.orders), sc.max_batch, sc.max_wait_ms)
    # the reward path judges each presentation order as its own call (group_rewards pairs them up)
    reward_batcher = MicroBatcher(judge_fn(engine, cfg, "ab"), sc.max_batch, sc.max_wait_ms)
    counters = {"groups": 0, "judge_calls": 0, "failed_calls": 0, "judge_seconds": 0.0, "flagged_items": 0}
    # masked-reward accounting and overlap of reward requests (ours; issue 26): see `health`
    masking = {"masked_rewards": 0, "scored_rewards": 0, "masked_chars": 0, "scored_chars": 0}
    flight = {"in_flight": 0, "max_in_flight": 0}
    flagged_by = {"score": 0, "get_reward": 0, "compare": 0}     # flagged items per endpoint (issue 25)

    def flagged(found: list[list[str]], endpoint: str) -> list[list[str]]:
        counters["flagged_items"] += sum(bool(f) for f in found)
        flagged_by[endpoint] += sum(bool(f) for f in found)
        return found

    @asynccontextmanager
    async def lifespan(app):
        compare_batcher.start()
        reward_batcher.start()
        yield
        for b in (compare_batcher, reward_batcher):          # graceful: finish what is queued or running
            await b.stop(drain_s=sc.request_timeout)
        if on_shutdown is not None:
            on_shutdown()

    app = FastAPI(title="gramr2 reward server", lifespan=lifespan)
    app.state.batcher = reward_batcher
    app.state.compare_batcher = compare_batcher

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if not authorized(request.headers.get("authorization"), api_key):
            return JSONResponse({"detail": "missing or wrong API key (send 'Authorization: Bearer <key>')"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        # the deadline is also the endpoints' own: a timed-out request's queued judge work is dropped (Starlette
        # does not cancel an endpoint when the middleware stops waiting for it)
        request.state.deadline = time.monotonic() + sc.request_timeout
        try:
            return await asyncio.wait_for(call_next(request), sc.request_timeout)
        except asyncio.TimeoutError:
            return JSONResponse({"detail": f"request took longer than serve.request_timeout={sc.request_timeout}s"},
                                status_code=504)

    async def judged(batcher: MicroBatcher, pairs: list[dict], deadline: float) -> list[judge.Judgment]:
        try:
            return await asyncio.wait_for(batcher.submit(pairs), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise http(504, f"request took longer than serve.request_timeout={sc.request_timeout}s") from None
        except GramrError as e:
            raise http(400, e.message) from None
        except Exception as e:  # noqa: BLE001 - an engine bug: report it (500), keep serving
            raise http(500, f"{type(e).__name__}: {e}") from None

    async def rewards(ps: list[str], rs: list[str], refs: list[str] | None,
                      deadline: float) -> tuple[list[float | None], dict]:
        """Group rewards for one request and its {judge_calls, failed_calls} (this request's own, even while
        others run); the group path's judge calls go through the shared batcher."""
        if gcfg.pairing == "reference" and refs is None:
            raise http(422, "missing field 'reference' ('labels' for /get_reward): pairing 'reference' needs them")
        check_tokens(engine.tokenizer, [[p, r, *([f] if refs else [])]
                                                          for p, r, f in zip(ps, rs, refs or ps)],
                     sc.max_prompt_tokens)
        loop = asyncio.get_running_loop()
        spent, gone = [0], threading.Event()       # judge pairs asked for so far; set once the request is gone

        def judge_sync(pairs: list[dict]) -> list[judge.Judgment]:
            spent[0] += len(pairs)
            if spent[0] > sc.max_judge_pairs:
                raise TooMuchWork(f"this request needs more than serve.max_judge_pairs={sc.max_judge_pairs} judge "
                                  f"comparisons ({spent[0]} so far; pairing {sc.pairing}, orders {sc.orders})")
            fut = asyncio.run_coroutine_threadsafe(reward_batcher.submit(pairs), loop)
            while not fut.done():                  # (a timeout loop, so the request going away is noticed)
                if gone.wait(0.05) or time.monotonic() > deadline:
                    fut.cancel()                   # timed out (504) or cancelled: its queued chunks are dropped
                    raise PastDeadline(f"request took longer than serve.request_timeout={sc.request_timeout}s")
            return fut.result()
        try:
            out, results = await asyncio.to_thread(group_rewards.batch_rewards, judge_sync, ps, rs, refs, gcfg)
        except asyncio.CancelledError:
            gone.set()
            raise
        except TooMuchWork as e:
            raise http(413, e.message) from None
        except PastDeadline as e:
            raise http(504, e.message) from None
        except GramrError as e:
            raise http(400, e.message) from None
        except Exception as e:  # noqa: BLE001 - an engine bug: report it (500), keep serving
            raise http(500, f"{type(e).__name__}: {e}") from None
        counters["groups"] += len(results)
        counters["judge_calls"] += sum(r.judge_calls for r in results)
        counters["failed_calls"] += sum(r.failed_calls for r in results)
        counters["judge_seconds"] += sum(r.seconds for r in results)
        cost = {"judge_calls": sum(r.judge_calls for r in results),
                "failed_calls": sum(r.failed_calls for r in results)}
        return out, cost

    async def accounted(ps: list[str], rs: list[str], refs: list[str] | None,
                        deadline: float) -> tuple[list[float | None], dict]:
        """`rewards`, counting the requests in flight and the masked vs scored rewards with their lengths."""
        flight["in_flight"] += 1
        flight["max_in_flight"] = max(flight["max_in_flight"], flight["in_flight"])
        try:
            out, cost = await rewards(ps, rs, refs, deadline)
        finally:
            flight["in_flight"] -= 1
        got = group_rewards.mask_report(rs, out)
        masking["masked_rewards"] += got["masked"]
        masking["scored_rewards"] += got["scored"]
        masking["masked_chars"] += sum(len(r) for r, x in zip(rs, out) if x is None)
        masking["scored_chars"] += sum(len(r) for r, x in zip(rs, out) if x is not None)
        return out, cost

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_name or cfg.model, "prompt_version": cfg.prompt,
                "orders": sc.orders, "votes": sc.votes, "pairing": sc.pairing, "score": sc.score,
                "max_batch": sc.max_batch, "max_wait_ms": sc.max_wait_ms,
                **{k: reward_batcher.stats[k] + compare_batcher.stats[k] for k in ("requests", "pairs", "batches")},
                "largest_batch": max(reward_batcher.stats["largest_batch"], compare_batcher.stats["largest_batch"]),
                **counters, **flight, "masked_rewards": masking["masked_rewards"],
                "scored_rewards": masking["scored_rewards"],
                "masked_chars_mean": masking["masked_chars"] / masking["masked_rewards"]
                if masking["masked_rewards"] else None,
                "scored_chars_mean": masking["scored_chars"] / masking["scored_rewards"]
                if masking["scored_rewards"] else None, "flagged_by_endpoint": dict(flagged_by)}

    @app.post("/score")
    async def score(request: Request) -> dict[str, Any]:
        body = await read_json(request, sc.max_body_bytes)
        ps, rs, refs = str_lists(body, ("prompt", "response", "reference"), sc.max_items, optional=("reference",))
        out, cost = await accounted(ps, rs, refs, request.state.deadline)
        return {"rewards": out, **cost,
                "flags": flagged([flags.suspicious(r) for r in rs], "score")}

    @app.post("/get_reward")
    async def get_reward(request: Request) -> dict[str, Any]:
        body = await read_json(request, sc.max_body_bytes)
        qs, ps, refs = str_lists(body, ("query", "prompts", "labels"), sc.max_items, optional=("labels",))
        extra = tuple(sc.strip_tokens)
        try:
            rs = [split_query(q, p, extra) for q, p in zip(qs, ps)]
        except GramrError as e:
            bad = next(i for i, (q, p) in enumerate(zip(qs, ps)) if p and p not in q)
            raise http(422, f"query[{bad}]: {e.message}") from None
        questions = [question_of(p, sc.policy_template) for p in ps]
        out, _ = await accounted(questions, rs, refs, request.state.deadline)
        keys = [(q, refs[i] if refs and sc.pairing == "reference" else "") for i, q in enumerate(questions)]
        filled = group_rewards.fill_masked(out, group_rewards.group_indices(keys))
        return {"rewards": filled, "scores": filled, "masked": [r is None for r in out],
                "flags": flagged([flags.suspicious(r) for r in rs], "get_reward")}

    @app.post("/compare")
    async def compare(request: Request) -> dict[str, Any]:
        body = await read_json(request, sc.max_body_bytes)
        pairs = compare_pairs(body, sc.max_items)
        check_tokens(engine.tokenizer, [list(p.values()) for p in pairs], sc.max_prompt_tokens)
        js = await judged(compare_batcher, pairs, request.state.deadline)
        return {"verdicts": [j.label for j in js], "p_a": [j.p_a for j in js],
                "rationales": [rationale_of(j) for j in js],
                "order_consistent": [j.order_consistent for j in js], "votes": [j.votes for j in js],
                "flags": flagged([flags.record_flags(p) for p in pairs], "compare")}

    return app


def api_key_for(host: str, given: str | None) -> str | None:
    """The API key to require: `given` or $GRAMR2_API_KEY. Raises GramrError when binding beyond loopback
    without one (the server would give the model to anyone who can reach the address)."""
    key = given or os.environ.get(API_KEY_ENV) or None
    if host not in LOOPBACK and not key:
        raise GramrError(f"binding {host} needs an API key: pass --api-key or set {API_KEY_ENV} "
                         "(clients send 'Authorization: Bearer <key>')")
    return key


def serve(cfg: "Config", engine=None, api_key: str | None = None) -> None:
    """Load the model and serve until interrupted (uvicorn). Beyond loopback an API key is required. On SIGTERM
    or Ctrl-C, uvicorn stops accepting connections and waits up to serve.request_timeout for requests in flight;
    the batchers finish their queued batches, the engine is closed, and uvicorn re-raises the signal (so the
    process ends as killed by SIGTERM, exit status 143 in a shell)."""
    import uvicorn

    from ..engines import note
    sc = cfg.serve
    config.ensure(sc, "serve.")
    key = api_key_for(sc.host, api_key)
    t0 = time.time()
    engine = engine or runner.recipe_engine(cfg)
    note(f"model {cfg.model} loaded in {time.time() - t0:.1f}s; serving on http://{sc.host}:{sc.port} "
         f"(pairing {sc.pairing}, orders {sc.orders}, votes {sc.votes}, max_batch {sc.max_batch}"
         f"{', API key required' if key else ''})")
    closed = []

    def close() -> None:
        if not closed:
            closed.append(True)
            engine.close()
    try:
        uvicorn.run(create_app(engine, cfg, api_key=key, on_shutdown=close), host=sc.host, port=sc.port,
                    log_level="warning", timeout_graceful_shutdown=int(sc.request_timeout) + 1)
    finally:
        close()
