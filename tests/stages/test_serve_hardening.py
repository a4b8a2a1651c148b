"""serve: masking (no 0.5 when nothing parsed, no one-order rewards), /compare's rationale from the original
order, OpenRLHF queries with a chat template and right padding, API key, token limit, timeout, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from scripted_engine import ScriptedEngine

from gramr2_cli import recipe
from gramr2_cli.core.errors import GramrError
from gramr2_cli.engines import Generation
from gramr2_cli.server import serve, serve_requests

SRC = str(Path(serve.__file__).resolve().parents[1])
HERE = str(Path(__file__).resolve().parent)


def make_app(engine, *sets, api_key=None):
    return serve.create_app(engine, recipe.load(None, list(sets)), model_name="scripted", api_key=api_key)


def test_a_judgment_with_nothing_parsed_is_masked_not_half():
    """Issue 14 done-when: the old `reward_of` returned 0.5 here."""
    eng = ScriptedEngine(lambda q, a, b, k: (None, None))
    with TestClient(make_app(eng)) as c:
        r = c.post("/score", json={"prompt": ["p"], "response": ["x"], "reference": ["y"]}).json()
        assert r == {"rewards": [None], "judge_calls": 2, "failed_calls": 2, "flags": [[]]}
        g = c.post("/get_reward", json={"query": ["p x"], "prompts": ["p"], "labels": ["y"]}).json()
        assert g["masked"] == [True]
        assert c.get("/health").json()["failed_calls"] == 4


def test_a_reward_never_comes_from_one_order_only():
    """Issue 17 item 11: the swapped order (reference shown first) never reaches an answer; the old server
    returned the first order's P(A) = 0.9 for 'x'."""
    def decide(q, a, b, k):
        return ("A", 0.9) if a.startswith("x") else (None, None)
    with TestClient(make_app(ScriptedEngine(decide))) as c:
        r = c.post("/score", json={"prompt": ["p", "p"], "response": ["x", "x2"], "reference": ["ref", "ref"]})
        assert r.json()["rewards"] == [None, None]


def test_get_reward_fills_a_masked_item_with_its_groups_mean():
    def decide(q, a, b, k):                                   # 'bad' never gets a verdict
        if "bad" in (a, b):
            return None, None
        return ("A", 0.8) if a == "good" or b == "okay" else ("B", 0.2)
    eng = ScriptedEngine(decide)
    with TestClient(make_app(eng, "serve.pairing=reference")) as c:
        body = {"query": ["q good", "q bad", "q okay"], "prompts": ["q"] * 3, "labels": ["ref"] * 3}
        g = c.post("/get_reward", json=body).json()
        # good: ½ (0.8 + 0.8) = 0.8; okay: shown first vs ref → P(A) = 0.2, shown second → 1 − 0.8 = 0.2
        assert g["masked"] == [False, True, False]
        assert g["rewards"] == pytest.approx([0.8, 0.5, 0.2])   # bad = mean(0.8, 0.2)


class OrderedTextEngine(ScriptedEngine):
    """Each reply's rationale names the response shown first, so a test sees which order it came from."""

    def generate(self, prompts, **kw):
        out = super().generate(prompts, **kw)
        for p, gens in zip(prompts, out):
            shown_a = self.parse(p)[1]
            for k, g in enumerate(gens):
                gens[k] = Generation(text=g.text.replace("Feedback: f", f"Feedback: first {shown_a}"),
                                     num_tokens=g.num_tokens, sum_logprob=g.sum_logprob,
                                     mean_logprob=g.mean_logprob, ab_probs=g.ab_probs)
        return out


def test_compare_rationale_comes_from_the_original_order_or_none():
    """Issue 17 item 9: the original order is unparseable, the swapped one says B (original A): the old
    server returned the swapped sample's rationale, whose 'Response A' is the original B."""
    def decide(q, a, b, k):
        return (None, None) if a == "one" else ("B", 0.2)
    with TestClient(make_app(OrderedTextEngine(decide))) as c:
        body = c.post("/compare", json={"prompt": ["p"], "response_a": ["one"], "response_b": ["two"]}).json()
        assert body["verdicts"] == ["A"] and body["rationales"] == [None]
        body = c.post("/compare", json={"prompt": ["p"], "response_a": ["two"], "response_b": ["one"]}).json()
        assert body["verdicts"] == ["B"] and body["rationales"][0].startswith("Feedback: first two")
    with TestClient(make_app(OrderedTextEngine(lambda q, a, b, k: (None, None)))) as c:
        body = c.post("/compare", json={"prompt": ["p"], "response_a": ["one"], "response_b": ["two"]}).json()
        assert body["verdicts"] == [None] and body["rationales"] == [None]   # not an unparseable sample's text


def test_get_reward_strips_the_policys_chat_template_and_right_padding():
    """Issue 17 item 10: the old server judged the ChatML prompt as is and kept Llama-3 padding."""
    eng = ScriptedEngine(lambda q, a, b, k: ("A", 0.9))
    prompt = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n" \
             "<|im_start|>assistant\n"
    query = prompt + "4<|im_end|><|end_of_text|><|finetune_right_pad_id|><|finetune_right_pad_id|>"
    with TestClient(make_app(eng)) as c:
        assert c.post("/get_reward", json={"query": [query], "prompts": [prompt], "labels": ["5"]}).status_code == 200
    assert ScriptedEngine.parse(eng.calls[-1][0]) == ("What is 2+2?", "4", "5")
    llama = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>" \
            "<|start_header_id|>assistant<|end_header_id|>\n\n"
    assert serve_requests.question_of(llama) == "Hi there"
    assert serve_requests.question_of("<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n"
                                      "<|im_start|>user\nc<|im_end|>\n") == "User: a\nAssistant: b\nUser: c"
    assert serve_requests.question_of("plain <b>text</b>") == "plain <b>text</b>"
    assert serve_requests.question_of(prompt, "none") == prompt.strip()
    assert serve_requests.split_query("Q A<pad><pad>", "Q", ("<x>",)) == "A"
    assert serve_requests.split_query("Q A<x><x>", "Q", ("<x>",)) == "A"


def test_api_key_required_beyond_loopback_and_checked():
    with pytest.raises(GramrError, match="needs an API key"):
        serve.api_key_for("0.0.0.0", None)
    assert serve.api_key_for("127.0.0.1", None) is None
    assert serve.api_key_for("0.0.0.0", "k1") == "k1"
    eng = ScriptedEngine(lambda q, a, b, k: ("A", 0.9))
    good = {"prompt": ["p"], "response": ["x"], "reference": ["y"]}
    with TestClient(make_app(eng, api_key="s3cret")) as c:
        assert c.post("/score", json=good).status_code == 401
        assert c.post("/score", json=good, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/health").status_code == 401
        r = c.post("/score", json=good, headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200 and r.json()["rewards"] == pytest.approx([0.5])


def test_cli_refuses_a_public_bind_without_a_key():
    env = {k: v for k, v in os.environ.items() if k != serve.API_KEY_ENV}
    env["PYTHONPATH"] = SRC
    r = subprocess.run([sys.executable, "-c", "from gramr2_cli.cli import main; main()", "serve",
                        "--host", "0.0.0.0", "--model", "/nonexistent"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 1
    assert "needs an API key" in r.stderr and "Traceback" not in r.stderr


class WordTokenizer:
    chat_template = None

    def encode(self, text, add_special_tokens=False):
        return text.split()


def slow_engine(seconds: float) -> ScriptedEngine:
    """A scripted judge (always A, P = 0.9) whose every engine call takes `seconds`."""
    class Slow(ScriptedEngine):
        def generate(self, prompts, **kw):
            time.sleep(seconds)
            return super().generate(prompts, **kw)
    return Slow(lambda q, a, b, k: ("A", 0.9))


def test_prompt_token_limit_and_request_timeout():
    eng = ScriptedEngine(lambda q, a, b, k: ("A", 0.9))
    eng.tokenizer = WordTokenizer()
    with TestClient(make_app(eng, "serve.max_prompt_tokens=5")) as c:
        r = c.post("/score", json={"prompt": ["a b c"], "response": ["d e"], "reference": ["f"]})
        assert r.status_code == 413 and "item 0: 6 prompt tokens exceed serve.max_prompt_tokens=5" in r.text
        assert c.post("/score", json={"prompt": ["a b"], "response": ["d e"], "reference": ["f"]}).status_code == 200
        r = c.post("/compare", json={"prompt": ["a b c"], "response_a": ["d e"], "response_b": ["f"]})
        assert r.status_code == 413

    with TestClient(make_app(slow_engine(1.0), "serve.request_timeout=0.2")) as c:
        r = c.post("/score", json={"prompt": ["p"], "response": ["x"], "reference": ["y"]})
        assert r.status_code == 504 and "serve.request_timeout=0.2" in r.text


def test_reward_work_past_its_deadline_is_a_504_whoever_notices_first(monkeypatch):
    """The reward path's worker thread notices the deadline itself (it polls every 50 ms). When it noticed before
    the middleware's own timeout (a loaded machine), the cancelled future's CancelledError cancelled the endpoint
    from inside and the client got no response at all. Here the middleware never times out, so only the thread can."""
    async def no_timeout(aw, timeout):
        return await aw
    monkeypatch.setattr(asyncio, "wait_for", no_timeout)

    with TestClient(make_app(slow_engine(0.6), "serve.request_timeout=0.2")) as c:
        r = c.post("/score", json={"prompt": ["p"], "response": ["x"], "reference": ["y"]})
        assert r.status_code == 504 and "serve.request_timeout=0.2" in r.text


SERVER = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{src!r}, {here!r}]
    from scripted_engine import ScriptedEngine
    from gramr2_cli import recipe
    from gramr2_cli.server import serve

    class Slow(ScriptedEngine):
        def generate(self, prompts, **kw):
            time.sleep(2.0)
            return super().generate(prompts, **kw)

        def close(self):
            print("engine closed", flush=True)

    cfg = recipe.load(None, ["serve.port={port}", "serve.max_wait_ms=0"])
    serve.serve(cfg, engine=Slow(lambda q, a, b, k: ("A", 0.9)))
""")


def test_sigterm_lets_a_request_in_flight_finish():
    from test_serve import free_socket, wait_healthy
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([sys.executable, "-c", SERVER.format(src=SRC, here=HERE, port=port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, 300)
        got = {}
        t = threading.Thread(target=lambda: got.update(r=httpx.post(
            base + "/score", json={"prompt": ["p"], "response": ["x"], "reference": ["y"]}, timeout=30)))
        t.start()
        time.sleep(0.7)                                   # the request is in the engine now (2 s)
        proc.send_signal(signal.SIGTERM)
        t.join(timeout=30)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert got["r"].status_code == 200 and got["r"].json()["rewards"] == pytest.approx([0.5])
    # the engine was closed after the request finished; uvicorn then re-raises SIGTERM (killed-by-signal status)
    assert proc.returncode == -signal.SIGTERM and out == "engine closed\n", err


# ---------------------------------------------------------------- issue 27 items 6 and 7

class Timed(ScriptedEngine):
    """Records the size of every engine call; each call takes `delay` seconds."""

    def __init__(self, decide, delay: float = 0.0):
        super().__init__(decide)
        self.delay, self.sizes = delay, []

    def generate(self, prompts, **kw):
        self.sizes.append(len(prompts))
        time.sleep(self.delay)
        return super().generate(prompts, **kw)


def test_a_large_request_is_split_into_engine_calls_of_max_batch():
    """Item 6: 40 items x 2 orders = 80 judge pairs became one engine call of 80 prompts."""
    eng = Timed(lambda q, a, b, k: ("A", 0.9) if a == "good" or b == "bad" else ("B", 0.1))
    body = {"prompt": ["p"] * 40, "response": [f"r{i}" for i in range(40)], "reference": ["ref"] * 40}
    with TestClient(make_app(eng, "serve.max_batch=16")) as c:
        r = c.post("/score", json=body)
        assert r.status_code == 200 and len(r.json()["rewards"]) == 40 and r.json()["judge_calls"] == 80
        assert sum(eng.sizes) == 80 and max(eng.sizes) == 16
        assert c.get("/health").json()["largest_batch"] == 16
        r = c.post("/compare", json={"prompt": ["p"] * 20, "response_a": ["good"] * 20, "response_b": ["bad"] * 20})
        assert r.status_code == 200 and r.json()["verdicts"] == ["A"] * 20
        assert c.get("/health").json()["largest_batch"] == 16     # pairs; judged in both orders: 32 prompts
        assert eng.sizes[-2:] == [32, 8]


def test_work_per_request_is_capped():
    """Item 6: round-robin over 128 responses to one prompt asked for 16,256 judge comparisons in one request."""
    eng = Timed(lambda q, a, b, k: ("A", 0.9))
    body = {"prompt": ["p"] * 128, "response": [f"r{i}" for i in range(128)]}
    with TestClient(make_app(eng, "serve.pairing=round-robin")) as c:
        r = c.post("/score", json=body)
        assert r.status_code == 413 and "serve.max_judge_pairs=4096" in r.text and "16256" in r.text
        assert eng.sizes == []                                      # nothing was judged for it
        ok = c.post("/score", json={"prompt": ["p"] * 8, "response": [f"r{i}" for i in range(8)]})
        assert ok.status_code == 200 and ok.json()["judge_calls"] == 56


def test_work_of_a_timed_out_request_stops():
    """Item 6: after its 504 the request's work went on; now its queued chunks are dropped."""
    eng = Timed(lambda q, a, b, k: ("A", 0.9), delay=0.25)
    body = {"prompt": ["p"] * 12, "response": [f"r{i}" for i in range(12)]}     # 132 pairs = 33 chunks of 4
    with TestClient(make_app(eng, "serve.pairing=round-robin", "serve.max_batch=4",
                             "serve.request_timeout=1")) as c:
        r = c.post("/score", json=body)
        assert r.status_code == 504
        time.sleep(1.0)                                            # the chunk in the engine (if any) ends
        done = len(eng.sizes)
        time.sleep(1.0)
        assert len(eng.sizes) == done and done < 10                # not 33: the rest was dropped
        ok = c.post("/score", json={"prompt": ["p"] * 2, "response": ["x", "y"]})
        assert ok.status_code == 200 and ok.json()["judge_calls"] == 2   # the server serves on


@pytest.mark.parametrize("raw,what", [
    (b'{"prompt": ["\\ud800"], "response": ["x"], "reference": ["y"]}', "lone surrogate"),
    (b'{"prompt": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested too deeply"),
])
def test_bad_unicode_or_nesting_is_a_400(raw, what):
    """Item 7: both were a 500 with ~75 lines of traceback in the log."""
    eng = Timed(lambda q, a, b, k: ("A", 0.9))
    with TestClient(make_app(eng)) as c:                           # (raises on a server error, as it should)
        for path in ("/score", "/get_reward", "/compare"):
            r = c.post(path, content=raw, headers={"Content-Type": "application/json"})
            assert r.status_code == 400 and what in r.json()["detail"], (path, r.text)
        assert eng.sizes == []


def test_other_requests_are_judged_between_the_chunks_of_a_large_one():
    """Item 6: a large request's chunks are queued one after another, so a small request sent meanwhile waits
    for one chunk, not for all of them."""
    eng = Timed(lambda q, a, b, k: ("A", 0.9), delay=0.2)
    big = {"prompt": ["p"] * 40, "response": [f"r{i}" for i in range(40)], "reference": ["ref"] * 40}
    small = {"prompt": ["q"], "response": ["small one"], "reference": ["ref"]}
    with TestClient(make_app(eng, "serve.max_batch=16", "serve.max_wait_ms=0")) as c:
        got = {}
        t = threading.Thread(target=lambda: got.update(big=c.post("/score", json=big)))
        t.start()
        while not eng.sizes:                                        # the first chunk is in the engine
            time.sleep(0.01)
        assert c.post("/score", json=small).status_code == 200
        t.join(timeout=60)
    assert got["big"].status_code == 200 and eng.sizes == [16, 2, 16, 16, 16, 16]   # 80 pairs in 5 chunks
    small_calls = [i for i, ps in enumerate(eng.calls) if any("small one" in p for p in ps)]
    assert small_calls == [1]                                       # right after the chunk it waited for
