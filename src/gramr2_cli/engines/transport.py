"""HTTP for the `openai` engine (`remote.py`): requests round-robin over endpoints, bounded concurrency, retries,
a whole-request deadline, and a batch that stops at once (ours).

See `remote.py`'s docstring for what is retried. Standard library only (`http.client`): one connection per
request, so the watchdog can close exactly the ones it must.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import queue
import socket
import threading
import time
import urllib.parse
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from dataclasses import dataclass, field

from ..core.errors import GramrError


def decode(data: bytes, request: dict | None = None) -> dict:
    """A reply body as a JSON object. Raises ProtocolError for anything else (an HTML error page, garbage)."""
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError(f"the reply is not JSON: {data[:60]!r}") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"the reply is JSON but not an object: {data[:60]!r}")
    return body


class ProtocolError(Exception):
    """A reply that is not the JSON the protocol promises (garbage, an HTML page, missing fields, the wrong number
    of choices): retried like a 5xx, since a proxy or a restarting server sends them."""


class _Stop(Exception):
    """The batch was abandoned (Ctrl-C, SIGTERM, another request's error): a worker gives up without retrying."""


class _Pool:
    """`max_concurrency` daemon threads. Not `ThreadPoolExecutor`: the interpreter joins its threads at exit, so
    an interrupted stage would wait for every request in flight (and its retries) before it could exit."""

    def __init__(self, n: int):
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        for i in range(n):
            threading.Thread(target=self._work, name=f"gramr2-http-{i}", daemon=True).start()
        self.n = n

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            fut, fn, args, kw = job
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn(*args, **kw))
                except BaseException as e:      # handed to the waiting thread, which re-raises it
                    fut.set_exception(e)

    def submit(self, fn, *args, **kw) -> Future:
        fut: Future = Future()
        self.jobs.put((fut, fn, args, kw))
        return fut

    def close(self) -> None:
        for _ in range(self.n):
            self.jobs.put(None)


@dataclass
class _Try:
    """One HTTP exchange in flight: its connection, the whole-request deadline, and the batch's stop flag."""
    conn: http.client.HTTPConnection
    deadline: float
    stop: threading.Event


@dataclass
class Transport:
    """Round-robin HTTP requests with bounded concurrency, a whole-request deadline and retries (thread-safe).

    The thread waiting in `map` is also the watchdog: every 0.1 s it closes the connections past their deadline
    (`timeout` bounds the whole exchange, not each socket read: a server trickling bytes cannot hold a request),
    and on Ctrl-C / SIGTERM or a failed request it closes every connection of the batch, so the stage exits
    within a second or so with nothing written for that batch (a rerun resumes it)."""
    endpoints: list[str]
    max_concurrency: int = 8
    timeout: float = 600.0
    retries: int = 3
    backoff_s: float = 0.5
    requests_sent: list[int] = field(default_factory=list)   # per endpoint, tries included

    def __post_init__(self):
        self.pool = _Pool(self.max_concurrency)
        self.slots = itertools.count()
        self.lock = threading.Lock()
        self.tries: dict[int, _Try] = {}     # in flight, by id
        self.requests_sent = [0] * len(self.endpoints)
        key = os.environ.get("OPENAI_API_KEY")
        self.headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}

    # -- one exchange
    def _exchange(self, url: str, body: dict | None, stop: threading.Event) -> tuple[int, bytes]:
        """(status, body bytes) of one GET/POST, registered with the watchdog while it runs."""
        u = urllib.parse.urlsplit(url)
        cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        conn = cls(u.hostname, u.port, timeout=self.timeout)
        t = _Try(conn, time.monotonic() + self.timeout, stop)
        with self.lock:
            self.tries[id(t)] = t
        try:
            data = None if body is None else json.dumps(body).encode("utf-8")
            path = u.path + (f"?{u.query}" if u.query else "")
            conn.request("GET" if body is None else "POST", path, body=data, headers=self.headers)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            with self.lock:
                self.tries.pop(id(t), None)
            conn.close()

    def _watch(self, stop_all: threading.Event | None = None) -> None:
        """Close the connections past their deadline (or, with `stop_all`, those of that batch)."""
        now = time.monotonic()
        with self.lock:
            late = [t for t in self.tries.values() if now > t.deadline or t.stop.is_set()
                    or (stop_all is not None and t.stop is stop_all)]
        for t in late:
            sock = t.conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)   # wakes the worker blocked in recv()
                except OSError:
                    pass

    def call(self, path: str, body: dict | None, slot: int, parse=None, *, stop: threading.Event | None = None,
             failover: bool = True):
        """GET (body None) or POST `path` on endpoint `slot` mod n and return `parse(reply bytes, body)` (default:
        the reply as a JSON object); a failed try moves on to the next endpoint (`failover`, else the same one
        again). Connection errors, timeouts, 5xx and protocol errors (`parse` raising ProtocolError) are retried;
        a 4xx is not. Raises GramrError naming the endpoint. The whole-request deadline is enforced by `map`'s
        watchdog; called alone (the GET /models at start), `timeout` bounds each socket operation."""
        stop = stop or threading.Event()
        last = ""
        for attempt in range(self.retries + 1):
            k = (slot + (attempt if failover else 0)) % len(self.endpoints)
            url = self.endpoints[k] + path
            with self.lock:
                self.requests_sent[k] += 1
            t0 = time.monotonic()
            try:
                status, data = self._exchange(url, body, stop)
                if stop.is_set():
                    raise _Stop()
                if status >= 400:
                    detail = data.decode("utf-8", "replace")[:300]
                    if status < 500:
                        raise GramrError(f"{url}: HTTP {status}: {detail}")
                    last = f"{url}: HTTP {status}: {detail}"
                else:
                    return (parse or decode)(data, body)
            except ProtocolError as e:
                last = f"{url}: {e}"
            except (OSError, http.client.HTTPException) as e:    # refused, reset, closed mid-body, timed out
                if stop.is_set():
                    raise _Stop() from None
                late = time.monotonic() - t0 >= self.timeout
                last = f"{url}: " + (f"no complete reply within {self.timeout:g} s (generate.request_timeout)"
                                     if late else f"{type(e).__name__}: {e}".rstrip(": "))
            if attempt < self.retries and stop.wait(self.backoff_s * 2 ** attempt):
                raise _Stop()
        raise GramrError(f"request failed after {self.retries + 1} tries; last: {last}",
                         hint="is `vllm serve` running there? see generate.endpoints / generate.retries")

    # -- a batch
    def map(self, path: str, bodies: list[dict], parse=None) -> list:
        """POST every body (in order of `bodies`, round-robin over endpoints); `parse`d replies in the same
        order. The first failure (or Ctrl-C / SIGTERM here) stops the whole batch at once and is raised."""
        stop = threading.Event()
        futures = [self.pool.submit(self.call, path, b, next(self.slots), parse, stop=stop) for b in bodies]
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.1, return_when=FIRST_EXCEPTION)
                for f in done:
                    if f.exception() is not None and not isinstance(f.exception(), _Stop):
                        raise f.exception()
                self._watch()
            return [f.result() for f in futures]
        except BaseException:
            stop.set()
            for f in futures:
                f.cancel()
            self._watch(stop)
            wait(futures, timeout=2.0)        # workers see the closed sockets at once; never wait longer
            raise

    def close(self) -> None:
        """Stop every request in flight and the worker threads."""
        with self.lock:
            for t in self.tries.values():
                t.stop.set()
        self._watch()
        self.pool.close()
