"""serve: an HTTP reward server for RLHF (FastAPI + uvicorn), with micro-batching across clients.

The GRAM-R² RLHF recipe: the reward of a sampled response y for prompt x is the reward model's probability
that y beats a reference response y_ref (the policy's greedy output for x), averaged over both presentation
orders: r(x, y) = ½ [P(A | x, y, y_ref) + P(B | x, y_ref, y)] (`Judgment.p_a` with `orders: both`); with
`votes: k` the mean runs over k sampled judgments per order.

Endpoints (JSON in, JSON out; a bad request gets a 4xx and one-line `detail`, and the server keeps serving):
- `POST /score`      {"prompt": [..], "response": [..], "reference": [..]}            → {"rewards": [..]}
- `POST /get_reward` OpenRLHF's remote RM: {"query": [..], "prompts": [..], "labels": [..]} → {"rewards": [..]};
  `query[i]` is prompt + response as OpenRLHF sends it, `labels[i]` the reference (see `split_query`).
- `POST /compare`    {"pairs": [{"prompt", "response_a", "response_b"}, ..]} (or the three parallel lists)
                     → {"verdicts", "p_a", "rationales", "order_consistent", "votes"}
- `GET /health`      status, model, batching counters.

Micro-batching: every request's pairs go into one queue; a background task takes what arrived within
`max_wait_ms` of the first, up to `max_batch` pairs, and makes one engine call in a worker thread (the event
loop stays free to accept more requests). `create_app(engine, cfg)` builds the app in-process for tests.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' `request: Request` annotations, and
# Request is imported inside create_app (so importing this module for ServeConfig stays cheap).
import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import config, judge, prompts
from .errors import GramrError

if TYPE_CHECKING:
    from .recipe import Config

LOOPBACK = ("127.0.0.1", "localhost", "::1")
END_MARKERS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>", "<|end|>")   # stripped off a query's end


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"         # loopback only unless told otherwise
    port: int = 8000
    max_batch: int = 16             # most judge pairs per engine call
    max_wait_ms: int = 20           # how long the first request of a batch waits for company
    max_body_bytes: int = 1_000_000
    max_items: int = 1024           # most items in one request
    votes: int = 1                  # voting@k per order (k > 1 samples at generate.temperature)
    orders: str = "both"            # both = the GRAM-R² reward (averaged over presentation orders); or ab
    tie_break: bool = True

    def check(self) -> list[str]:
        """Problems of this section (keys relative to `serve`)."""
        return [*config.within("port", self.port, 1, 65535), *config.at_least("votes", self.votes, 1),
                *config.choice("orders", self.orders, judge.ORDERS),
                *config.at_least("max_batch", self.max_batch, 1), *config.at_least("max_wait_ms", self.max_wait_ms, 0),
                *config.at_least("max_body_bytes", self.max_body_bytes, 1),
                *config.at_least("max_items", self.max_items, 1)]


# ---------------------------------------------------------------- rewards (pure, also used by rlhf.py)

def reward_of(j: judge.Judgment) -> float:
    """P(A better) of a judgment: `p_a` (answer-token probability, averaged over samples and orders); without
    probabilities, the share of parsed votes for A; 0.5 when nothing parsed."""
    if j.p_a is not None:
        return float(j.p_a)
    decided = j.votes["A"] + j.votes["B"]
    return j.votes["A"] / decided if decided else 0.5


def judge_fn(engine, cfg: "Config") -> Callable[[list[dict]], list[judge.Judgment]]:
    """pairs → judgments with the server's settings (serve.votes, serve.orders)."""
    sc = cfg.serve
    how = judge.settings(cfg, "serve", votes=sc.votes, orders=sc.orders, tie_break=sc.tie_break)
    return lambda pairs: how.judge(engine, pairs)


def reference_pairs(prompts_: list[str], responses: list[str], references: list[str]) -> list[dict]:
    """(x, y, y_ref) → judge pairs with the response shown as A: its reward is the pair's P(A better)."""
    return [{"prompt": p, "response_a": r, "response_b": ref} for p, r, ref in zip(prompts_, responses, references)]


def score_against_reference(engine, cfg: "Config", prompts_: list[str], responses: list[str],
                            references: list[str]) -> list[float]:
    """The GRAM-R² reward of each response against its reference, with a local engine (no server)."""
    return [reward_of(j) for j in judge_fn(engine, cfg)(reference_pairs(prompts_, responses, references))]


def split_query(query: str, prompt: str) -> str:
    """The response inside an OpenRLHF query: the text after `prompt` (OpenRLHF decodes prompt + response as one
    string). Left padding before the prompt is ignored; end-of-turn markers (`<|im_end|>`, `<|endoftext|>`, …)
    and surrounding whitespace are stripped off the response. Raises GramrError when the prompt is not in it."""
    k = query.find(prompt) if prompt else 0
    if k < 0:
        raise GramrError("query does not contain its prompt; OpenRLHF sends query = prompt + response")
    resp = query[k + len(prompt):].strip()
    changed = True
    while changed:
        changed = False
        for m in END_MARKERS:
            if resp.endswith(m):
                resp, changed = resp[: -len(m)].rstrip(), True
    return resp


# ---------------------------------------------------------------- micro-batching

class MicroBatcher:
    """Collects pairs from concurrent requests; one `fn(pairs)` call (in a worker thread) per batch."""

    def __init__(self, fn: Callable[[list[dict]], list], max_batch: int, max_wait_ms: int):
        self.fn, self.max_batch, self.max_wait = fn, max(1, max_batch), max(0, max_wait_ms) / 1000
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stats = {"requests": 0, "pairs": 0, "batches": 0, "largest_batch": 0}

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.loop is not loop:
            self.loop, self.queue = loop, asyncio.Queue()
            self.task = loop.create_task(self._worker())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, RuntimeError):
                pass
            self.task = None

    async def submit(self, pairs: list[dict]) -> list:
        self.start()
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((pairs, fut))
        self.stats["requests"] += 1
        return await fut

    async def _collect(self) -> list[tuple[list[dict], asyncio.Future]]:
        held, self._held = self._held, None
        jobs = [held if held is not None else await self.queue.get()]
        size = len(jobs[0][0])
        deadline = self.loop.time() + self.max_wait
        while size < self.max_batch:
            try:
                job = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - self.loop.time()
                if left <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), left)
                except asyncio.TimeoutError:
                    break
            if size + len(job[0]) > self.max_batch:
                self._held = job
                break
            jobs.append(job)
            size += len(job[0])
        return jobs

    async def _worker(self) -> None:
        self._held = None    # a job that did not fit into the last batch opens the next one
        while True:
            jobs = await self._collect()
            pairs = [p for ps, _ in jobs for p in ps]
            try:
                results = await asyncio.to_thread(self.fn, pairs)
            except Exception as e:  # noqa: BLE001 - the engine failed: each waiting request gets it; serving goes on
                for _, f in jobs:
                    if not f.done():
                        f.set_exception(e)
                continue
            self.stats["batches"] += 1
            self.stats["pairs"] += len(pairs)
            self.stats["largest_batch"] = max(self.stats["largest_batch"], len(pairs))
            k = 0
            for ps, f in jobs:
                if not f.done():
                    f.set_result(results[k:k + len(ps)])
                k += len(ps)


# ---------------------------------------------------------------- request parsing

def _http(status: int, msg: str):
    from fastapi import HTTPException
    return HTTPException(status_code=status, detail=msg)


async def read_json(request, max_bytes: int) -> dict:
    """The request's JSON object; 413 past `max_bytes` (checked while streaming), 400 for invalid JSON."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _http(413, f"request body of {declared} bytes exceeds max_body_bytes={max_bytes}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _http(413, f"request body exceeds max_body_bytes={max_bytes}")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _http(400, f"invalid JSON body ({e})") from None
    if not isinstance(body, dict):
        raise _http(400, f"the JSON body must be an object, got {type(body).__name__}")
    return body


def str_lists(body: dict, keys: tuple[str, ...], max_items: int) -> list[list[str]]:
    """The lists of strings under `keys`, all the same non-zero length; 422 naming the field otherwise."""
    out = []
    for k in keys:
        v = body.get(k)
        if v is None:
            raise _http(422, f"missing field '{k}' (expected a list of strings)")
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise _http(422, f"field '{k}' must be a list of strings")
        out.append(v)
    lens = {k: len(v) for k, v in zip(keys, out)}
    if len(set(lens.values())) != 1:
        raise _http(422, f"fields must have the same length, got {lens}")
    n = len(out[0])
    if n == 0:
        raise _http(422, f"field '{keys[0]}' is empty")
    if n > max_items:
        raise _http(422, f"{n} items exceed max_items={max_items}; split the request")
    return out


def compare_pairs(body: dict, max_items: int) -> list[dict]:
    keys = ("prompt", "response_a", "response_b")
    if "pairs" not in body:
        return [dict(zip(keys, t)) for t in zip(*str_lists(body, keys, max_items))]
    pairs = body["pairs"]
    if not isinstance(pairs, list) or not pairs:
        raise _http(422, "field 'pairs' must be a non-empty list of {prompt, response_a, response_b}")
    if len(pairs) > max_items:
        raise _http(422, f"{len(pairs)} pairs exceed max_items={max_items}; split the request")
    for i, p in enumerate(pairs):
        if not isinstance(p, dict) or not all(isinstance(p.get(k), str) for k in keys):
            raise _http(422, f"pairs[{i}] must be an object with string fields prompt, response_a, response_b")
    return [{k: p[k] for k in keys} for p in pairs]


# ---------------------------------------------------------------- the app

def create_app(engine, cfg: "Config", model_name: str | None = None):
    """The FastAPI app serving `engine` with `cfg` (prompt version, generate.*, seed, serve.*; `recipe.load()`
    gives the defaults)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request

    sc = cfg.serve
    batcher = MicroBatcher(judge_fn(engine, cfg), sc.max_batch, sc.max_wait_ms)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="gramr2 reward server", lifespan=lifespan)
    app.state.batcher = batcher

    async def run(pairs: list[dict]) -> list[judge.Judgment]:
        try:
            return await batcher.submit(pairs)
        except GramrError as e:
            raise _http(400, e.message) from None
        except Exception as e:  # noqa: BLE001 - an engine bug: report it (500), keep serving
            raise _http(500, f"{type(e).__name__}: {e}") from None

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_name or cfg.model, "prompt_version": cfg.prompt,
                "orders": sc.orders, "votes": sc.votes, "max_batch": sc.max_batch, "max_wait_ms": sc.max_wait_ms,
                **batcher.stats}

    @app.post("/score")
    async def score(request: Request) -> dict[str, Any]:
        body = await read_json(request, sc.max_body_bytes)
        ps, rs, refs = str_lists(body, ("prompt", "response", "reference"), sc.max_items)
        js = await run(reference_pairs(ps, rs, refs))
        return {"rewards": [reward_of(j) for j in js]}

    @app.post("/get_reward")
    async def get_reward(request: Request) -> dict[str, Any]:
        body = await read_json(request, sc.max_body_bytes)
        qs, ps, refs = str_lists(body, ("query", "prompts", "labels"), sc.max_items)
        try:
            rs = [split_query(q, p) for q, p in zip(qs, ps)]
        except GramrError as e:
            bad = next(i for i, (q, p) in enumerate(zip(qs, ps)) if p and p not in q)
            raise _http(422, f"query[{bad}]: {e.message}") from None
        rewards = [reward_of(j) for j in await run(reference_pairs(ps, rs, refs))]
        return {"rewards": rewards, "scores": rewards}

    @app.post("/compare")
    async def compare(request: Request) -> dict[str, Any]:
        body = await read_json(request, sc.max_body_bytes)
        js = await run(compare_pairs(body, sc.max_items))
        return {"verdicts": [j.label for j in js], "p_a": [j.p_a for j in js],
                "rationales": [next((prompts.parse_rationale(s["text"]) for s in j.samples
                                     if s["verdict"] == j.label), None) for j in js],
                "order_consistent": [j.order_consistent for j in js], "votes": [j.votes for j in js]}

    return app


def serve(cfg: "Config", engine=None) -> None:
    """Load the model and serve until interrupted (uvicorn). Warns when binding beyond loopback."""
    import uvicorn

    from .engines import note
    sc = cfg.serve
    config.ensure(sc, "serve.")
    if sc.host not in LOOPBACK:
        note(f"warning: binding {sc.host}: the reward server has no authentication; anyone who can reach "
             f"this address can use the model")
    t0 = time.time()
    engine = engine or judge.load(cfg)
    note(f"model {cfg.model} loaded in {time.time() - t0:.1f}s; serving on http://{sc.host}:{sc.port} "
         f"(orders {sc.orders}, votes {sc.votes}, max_batch {sc.max_batch})")
    try:
        uvicorn.run(create_app(engine, cfg), host=sc.host, port=sc.port, log_level="warning")
    finally:
        engine.close()
