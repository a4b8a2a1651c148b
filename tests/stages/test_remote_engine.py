"""The `openai` engine (engines/remote.py) against scripted OpenAI-compatible servers on 127.0.0.1, and (marked
vllm) against a real `vllm serve` started here: same verdicts and answer-token probabilities as in-process vLLM."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gramr2_cli import config, engines
from gramr2_cli.engines import encode
from gramr2_cli.engines.remote import RemoteEngine
from gramr2_cli.errors import GramrError

REPLY = "<think>\nok\n</think>\n<answer>\nA\n</answer>"


class FakeServer:
    """A scripted `/v1` server: `complete(body, n_seen) -> (status, json)` answers POST /v1/completions."""

    def __init__(self, complete, model: str = "tiny", delay: float = 0.0):
        self.complete, self.model, self.delay = complete, model, delay
        self.bodies: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": outer.model, "max_model_len": 2048}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.bodies.append(body)
                    seen = len(outer.bodies)
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                time.sleep(outer.delay)
                with outer.lock:
                    outer.in_flight -= 1
                self._send(*outer.complete(body, seen))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    made: list[FakeServer] = []

    def make(complete, **kw) -> FakeServer:
        made.append(FakeServer(complete, **kw))
        return made[-1]
    yield make
    for s in made:
        s.close()


@pytest.fixture(scope="module")
def tok(tiny_model):
    from gramr2_cli import models
    return models.load_tokenizer(str(tiny_model))


def completion(choices: list[dict], prompt_logprobs=None) -> dict:
    for i, c in enumerate(choices):
        c["index"] = i
        c.setdefault("text", "")
        if prompt_logprobs is not None:
            c["prompt_logprobs"] = prompt_logprobs
    return {"id": "cmpl-1", "object": "text_completion", "model": "tiny", "choices": choices}


def choice(ids: list[int], lp: float = -0.5, top: dict[int, float] | None = None) -> dict:
    """A choice with token ids, `top` alternatives at each step, and each sampled token's log-probability: its
    `top` value, else `lp`."""
    top = top or {}
    return {"token_ids": ids, "finish_reason": "stop",
            "logprobs": {"tokens": [f"token_id:{t}" for t in ids], "token_logprobs": [top.get(t, lp) for t in ids],
                         "top_logprobs": [{f"token_id:{k}": v for k, v in top.items()} for _ in ids],
                         "text_offset": [0] * len(ids)}}


def engine(tiny_model, urls, **kw) -> RemoteEngine:
    return RemoteEngine(str(tiny_model), urls, backoff_s=kw.pop("backoff_s", 0.01), **kw)


def test_generate_sends_token_ids_and_builds_generations_like_vllm(tiny_model, tok, servers):
    ids = encode(tok, REPLY)
    a_id, b_id = encode(tok, "A")[0], encode(tok, "B")[0]
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    srv = servers(lambda body, _: (200, completion([choice(ids + [eos], -0.5, {a_id: math.log(0.6),
                                                                                 b_id: math.log(0.3)})])))
    eng = engine(tiny_model, [srv.url])
    try:
        (gens,) = eng.generate(["Judge this."], max_new_tokens=40, answer_token_probs=True)
    finally:
        eng.close()
    g = gens[0]
    assert (g.text, g.num_tokens, g.finish_reason) == (REPLY, len(ids) + 1, "stop")
    assert ids.count(a_id) == 1 and b_id not in ids
    assert g.sum_logprob == pytest.approx(-0.5 * len(ids) + math.log(0.6), abs=1e-12)   # A's own log-prob
    assert g.ab_probs == pytest.approx((2 / 3, 1 / 3), abs=1e-12)     # 0.6 : 0.3 renormalised over A/B
    (body,) = srv.bodies
    assert body["prompt"] == encode(tok, "Judge this.")                 # token ids, tokenized here
    assert (body["model"], body["n"], body["max_tokens"], body["logprobs"]) == ("tiny", 1, 40, 20)
    assert "seed" not in body and body["temperature"] == 0.0            # greedy: no seed
    assert body["stop_token_ids"] == eng.stops and eos in eng.stops
    assert (body["top_k"], body["repetition_penalty"], body["return_tokens_as_token_ids"]) == (0, 1.0, True)


def test_sampling_sends_the_per_prompt_seed(tiny_model, servers):
    srv = servers(lambda body, _: (200, completion([choice([42]), choice([43])])))
    eng = engine(tiny_model, [srv.url])
    try:
        out = eng.generate(["p one", "p two"], n=2, temperature=0.7, top_p=0.9, max_new_tokens=1, seed=3)
    finally:
        eng.close()
    assert [[g.num_tokens for g in row] for row in out] == [[1, 1], [1, 1]]
    assert [b["seed"] for b in srv.bodies] == [engines.row_seed(3, "p one"), engines.row_seed(3, "p two")]
    assert {(b["n"], b["temperature"], b["top_p"]) for b in srv.bodies} == {(2, 0.7, 0.9)}


def test_score_and_answer_probs_read_prompt_logprobs(tiny_model, tok, servers):
    def complete(body, _):   # log p(token at q) = −0.01·q, so sums are checkable by hand
        seq = body["prompt"]
        plp = [None] + [{str(seq[q]): {"logprob": -0.01 * q, "rank": 1}} for q in range(1, len(seq))]
        assert (body["max_tokens"], body["prompt_logprobs"]) == (1, 0)
        return 200, completion([choice([7])], plp)
    srv = servers(complete)
    eng = engine(tiny_model, [srv.url])
    try:
        (s,) = eng.score(["Q"], [" an answer"])
        probs = eng.answer_probs(["Q"], ["<answer>\nB</answer>"])
    finally:
        eng.close()
    p, c = len(encode(tok, "Q")), len(encode(tok, " an answer"))
    assert s == pytest.approx(sum(-0.01 * q for q in range(p, p + c)), abs=1e-9)
    # P(A) and P(B) are read at the same position (the last of prefix + letter): equal log-probs → ½ each
    assert probs == [pytest.approx((0.5, 0.5), abs=1e-12)]
    assert len(srv.bodies) == 3                                         # 1 score + 2 letters


def test_retries_5xx_and_connection_errors_but_not_4xx(tiny_model, servers):
    srv = servers(lambda body, seen: (503, {"error": "busy"}) if seen <= 2 else (200, completion([choice([5])])))
    eng = engine(tiny_model, [srv.url], retries=2)
    try:
        (gens,) = eng.generate(["x"], max_new_tokens=1)
        assert gens[0].num_tokens == 1 and len(srv.bodies) == 3          # two 503s, then OK
    finally:
        eng.close()
    bad = servers(lambda body, _: (400, {"error": "max_tokens too large"}))
    eng = engine(tiny_model, [bad.url], retries=3)
    try:
        with pytest.raises(GramrError, match="HTTP 400: .*max_tokens too large"):
            eng.generate(["x"], max_new_tokens=1)
        assert len(bad.bodies) == 1                                       # a 4xx is not retried
        eng.transport.endpoints = ["http://127.0.0.1:9/v1"]               # nothing listens on port 9
        t0 = time.perf_counter()
        with pytest.raises(GramrError, match="failed after 4 tries"):
            eng.generate(["x"], max_new_tokens=1)
        assert time.perf_counter() - t0 >= 0.01 + 0.02 + 0.04            # exponential backoff between tries
    finally:
        eng.close()


def test_round_robin_over_endpoints_keeps_prompt_order(tiny_model, tok, servers):
    echo = lambda body, _: (200, completion([choice(body["prompt"][-1:])]))   # reply = the prompt's last token
    srvs = [servers(echo) for _ in range(3)]
    eng = engine(tiny_model, [s.url for s in srvs], max_concurrency=3)
    prompts = [f"question number {i} ends with word{i}" for i in range(9)]
    try:
        out = eng.generate(prompts, max_new_tokens=1)
    finally:
        eng.close()
    assert [len(s.bodies) for s in srvs] == [3, 3, 3]
    assert [row[0].text for row in out] == [tok.decode(encode(tok, p)[-1:]) for p in prompts]
    assert eng.transport.requests_sent == [3, 3, 3]


def test_concurrency_is_bounded(tiny_model, servers):
    srv = servers(lambda body, _: (200, completion([choice([5])])), delay=0.2)
    eng = engine(tiny_model, [srv.url], max_concurrency=2)
    t0 = time.perf_counter()
    try:
        eng.generate([f"p{i}" for i in range(6)], max_new_tokens=1)
    finally:
        eng.close()
    assert srv.max_in_flight == 2
    assert time.perf_counter() - t0 >= 0.6                               # 6 requests, 2 at a time, 0.2 s each


def test_load_engine_from_config_and_its_errors(tiny_model, servers):
    srv = servers(lambda body, _: (200, completion([choice([5])])))
    other = servers(lambda body, _: (200, completion([choice([5])])), model="another")
    cfg = config.load(None, ["generate.engine=openai", f"generate.endpoints=[{srv.url},{srv.url}/]",
                             "generate.max_concurrency=3"], model=str(tiny_model))
    assert cfg.generate.endpoints == [srv.url, srv.url + "/"]
    eng = engines.load_engine(cfg.model, cfg.generate)
    try:
        assert isinstance(eng, RemoteEngine) and eng.name == "openai"
        assert eng.transport.endpoints == [srv.url, srv.url] and eng.transport.max_concurrency == 3
        assert (eng.served_model, eng.context_length) == ("tiny", 2048)
        assert engines.load_engine(cfg.model, cfg.generate) is eng        # cached per model and endpoints
    finally:
        eng.close()
    cfg.generate.endpoints = []
    with pytest.raises(GramrError, match="needs generate.endpoints"):
        engines.load_engine(cfg.model, cfg.generate)
    cfg.generate.endpoints = ["127.0.0.1:8000"]
    with pytest.raises(GramrError, match="not an http"):
        engines.load_engine(cfg.model, cfg.generate)
    cfg.generate.endpoints = [srv.url, other.url]
    with pytest.raises(GramrError, match="serve different models: another, tiny"):
        engines.load_engine(cfg.model, cfg.generate)
