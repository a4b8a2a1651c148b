"""A misbehaving OpenAI-compatible endpoint on 127.0.0.1 (issue 27): it answers `/v1/completions` correctly, or
in one of the ways a proxy, a restarting server or a broken one does. Every wait is bounded (at most `max_wait`
seconds), the server threads are daemons, and `close()` stops it: nothing outlives the test.

Modes (`BadEndpoint.mode`, or a function of the request count returning one):
  ok           n choices, each a verdict `<answer>A</answer>` with A/B in the top log-probabilities
  few / many   1 choice / n + 1 choices whatever `n` asked (a server or proxy that ignores `n`)
  garbage      status 200, a body that is not JSON
  html         status 200, an HTML page
  nochoices    a JSON object without `choices`
  noindex      choices without `index`
  nologprobs   choices without `logprobs` although they were asked for
  cut          Content-Length says 1000 bytes, 20 are sent, the connection is closed
  trickle      a valid reply (padded to ~16 kB) sent 64 bytes every 0.5 s (for at most `max_wait` s)
  slow         the valid reply after `max_wait` s
"""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):   # a client that hung up mid-reply is what tests do
        pass


class BadEndpoint:
    def __init__(self, verdict_ids: list[int], a_id: int, b_id: int, mode="ok", max_wait: float = 30.0):
        self.verdict_ids, self.a_id, self.b_id = verdict_ids, a_id, b_id
        self.mode, self.max_wait = mode, max_wait
        self.requests = 0
        self.lock = threading.Lock()
        self.closed = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _raw(self, status: int, data: bytes, ctype: str = "application/json", length: int | None = None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data) if length is None else length))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()

            def do_GET(self):
                self._raw(200, json.dumps({"object": "list", "data": [{"id": "tiny", "max_model_len": 4096}]})
                          .encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests += 1
                    seen = outer.requests
                mode = outer.mode(seen) if callable(outer.mode) else outer.mode
                outer.reply(self, mode, body)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def completion(self, body: dict, n: int) -> dict:
        top = {f"token_id:{self.a_id}": math.log(0.7), f"token_id:{self.b_id}": math.log(0.2)}
        ids = self.verdict_ids
        choice = {"text": "", "token_ids": ids, "finish_reason": "stop",
                  "logprobs": {"tokens": [f"token_id:{t}" for t in ids],
                               "token_logprobs": [top.get(f"token_id:{t}", -0.1) for t in ids],
                               "top_logprobs": [top for _ in ids], "text_offset": [0] * len(ids)}}
        plp = None
        if body.get("prompt_logprobs") is not None:
            plp = [None] + [{str(t): {"logprob": -1.0, "rank": 1}} for t in body["prompt"][1:]]
        return {"id": "cmpl-1", "object": "text_completion", "model": "tiny",
                "choices": [{**choice, "index": i, "prompt_logprobs": plp} for i in range(n)]}

    def reply(self, h, mode: str, body: dict) -> None:
        n = body.get("n", 1)
        good = lambda k=n: json.dumps(self.completion(body, k)).encode()
        if mode == "ok":
            h._raw(200, good())
        elif mode in ("few", "many"):
            h._raw(200, good(1 if mode == "few" else n + 1))
        elif mode == "garbage":
            h._raw(200, b"{'choices': [oops")
        elif mode == "html":
            h._raw(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
        elif mode == "nochoices":
            h._raw(200, b'{"object": "error", "message": "queue full"}')
        elif mode in ("noindex", "nologprobs"):
            doc = self.completion(body, n)
            for c in doc["choices"]:
                c.pop("index" if mode == "noindex" else "logprobs")
            h._raw(200, json.dumps(doc).encode())
        elif mode == "cut":
            h._raw(200, good()[:20], length=1000)
        elif mode == "trickle":
            data = good() + b" " * 16_384        # valid JSON, ~2 min at 64 bytes / 0.5 s
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            t0 = time.monotonic()
            for i in range(0, len(data), 64):
                if self.closed.is_set() or time.monotonic() - t0 > self.max_wait:
                    break
                try:
                    h.wfile.write(data[i:i + 64])
                    h.wfile.flush()
                except OSError:     # the client gave up: what the test wants
                    break
                time.sleep(0.5)
        elif mode == "slow":
            self.closed.wait(self.max_wait)
            try:
                h._raw(200, good())
            except OSError:
                pass
        else:
            raise ValueError(mode)

    def close(self) -> None:
        self.closed.set()
        self.httpd.shutdown()
        self.httpd.server_close()
