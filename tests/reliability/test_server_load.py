"""Issue 8 item 5: the real reward server (`gramr2 serve` subprocess, tiny model, hf engine) on loopback under a
bounded concurrent load with 1 in 5 requests malformed, clients that vanish mid-request, and the default bind."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .helpers import ENV

CLIENTS, PER_CLIENT = 8, 10
pytestmark = pytest.mark.xdist_group("server_load")   # one worker, one server for the module (under xdist)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    """(base url, process, port) of `gramr2 serve` with no --host (the default bind); stderr goes to a file (a
    pipe nobody reads could fill up and stall the server)."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "stderr.log"
    errf = open(log, "w")  # noqa: SIM115 - open for the whole fixture, closed after the server stops
    p = subprocess.Popen([sys.executable, "-m", "gramr2_cli.cli", "serve", "--model", str(tiny_model), "--engine",
                          "hf", "--port", str(port), "-s", "generate.max_new_tokens=8", "--max-batch", "16"],
                         env=ENV, stdout=subprocess.DEVNULL, stderr=errf)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        assert p.poll() is None, log.read_text()[-2000:]
        assert time.time() < deadline, "server did not come up in 120 s"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    assert f"serving on http://127.0.0.1:{port}" in log.read_text()     # the default bind, as announced
    yield url, p, port
    p.terminate()
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    errf.close()


def good(c: int, i: int) -> dict:
    return {"json": {"prompt": [f"What is {c} + {i}?"], "response": [str(c + i)], "reference": [str(c + i + 1)]}}


BAD = [
    ("invalid JSON", {"content": b'{"prompt": ["x"', "headers": {"content-type": "application/json"}}, 400),
    ("missing field", {"json": {"prompt": ["x"], "response": ["y"]}}, 422),
    ("wrong lengths", {"json": {"prompt": ["x", "y"], "response": ["a"], "reference": ["b"]}}, 422),
    ("oversized body", {"json": {"prompt": ["x" * 1_100_000], "response": ["a"], "reference": ["b"]}}, 413),
    ("wrong type", {"json": {"prompt": [1], "response": ["a"], "reference": ["b"]}}, 422),
    ("not an object", {"json": ["prompt"]}, 400),
    ("empty lists", {"json": {"prompt": [], "response": [], "reference": []}}, 422),
]


async def _load(url: str) -> dict:
    stats = {"ok": 0, "bad_4xx": 0, "wrong": [], "conn_errors": 0, "latencies": []}

    async def client(c: int, http: httpx.AsyncClient) -> None:
        for i in range(PER_CLIENT):
            k = c * PER_CLIENT + i
            if k % 5 == 4:                                    # 1 in 5 malformed, every kind in turn
                name, kw, want = BAD[(k // 5) % len(BAD)]
            else:
                name, kw, want = "good", good(c, i), 200
            t0 = time.perf_counter()
            try:
                r = await http.post(f"{url}/score", **kw)
            except httpx.TransportError:
                stats["conn_errors"] += 1
                continue
            stats["latencies"].append(time.perf_counter() - t0)
            if r.status_code != want:
                stats["wrong"].append((name, r.status_code, r.text[:200]))
            elif want == 200:
                # 8 new tokens never reach a verdict on the tiny random judge: the reward is masked (null)
                assert r.json()["rewards"] == [None]
                stats["ok"] += 1
            else:
                assert "detail" in r.json()
                stats["bad_4xx"] += 1

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=CLIENTS)) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c, http) for c in range(CLIENTS)))
        stats["seconds"] = time.perf_counter() - t0
    return stats


def test_concurrent_load_with_malformed_requests(server):
    url, proc, _ = server
    s = asyncio.run(_load(url))
    total = CLIENTS * PER_CLIENT
    n_bad = sum(1 for k in range(total) if k % 5 == 4)
    print(f"\nserved {total} requests ({total - n_bad} good, {n_bad} malformed) from {CLIENTS} clients in "
          f"{s['seconds']:.2f}s = {total / s['seconds']:.1f} requests/s; "
          f"max latency {max(s['latencies']):.2f}s; connection errors {s['conn_errors']}")
    assert s["conn_errors"] == 0
    assert s["wrong"] == []
    assert s["ok"] == total - n_bad and s["bad_4xx"] == n_bad
    h = httpx.get(f"{url}/health").json()
    assert h["status"] == "ok" and h["pairs"] >= total - n_bad
    assert h["batches"] < h["pairs"]                         # concurrent requests were micro-batched
    assert proc.poll() is None


def _raw(port: int, data: bytes, read: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        return s.recv(65536) if read else b""


def test_clients_that_disconnect_mid_request(server):
    url, proc, port = server
    body = json.dumps(good(9, 9)["json"]).encode()
    head = (f"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    _raw(port, head + body[: len(body) // 2])             # half a body, then gone
    _raw(port, head)                                       # headers only, then gone
    _raw(port, b"POST /score HTTP/1.1\r\nHost: 12")        # half the headers
    for _ in range(3):
        _raw(port, head + body)                            # a whole request, gone before the answer
    _raw(port, b"\x16\x03\x01\x02\x00garbage-not-http\r\n\r\n")
    time.sleep(0.5)
    assert proc.poll() is None
    assert httpx.get(f"{url}/health", timeout=30).json()["status"] == "ok"
    r = httpx.post(f"{url}/score", timeout=60, **good(1, 2))
    assert r.status_code == 200 and len(r.json()["rewards"]) == 1
    # the answer to a raw keep-alive request still arrives whole
    resp = _raw(port, head.replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n") + body, read=True)
    assert resp.startswith(b"HTTP/1.1 200")


def _listening(port: int) -> list[str]:
    """Local addresses listening on TCP `port`, read from /proc/net/tcp{,6} (Linux; no `ss` needed)."""
    found = []
    for name, width in (("tcp", 8), ("tcp6", 32)):
        table = Path("/proc/net") / name
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:          # 0A = LISTEN
                raw = bytes.fromhex(addr)
                ip = (socket.inet_ntop(socket.AF_INET, raw[::-1]) if width == 8 else
                      socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))))
                found.append(ip)
    return found


def test_binds_loopback_by_default(server):
    _, _, port = server
    from gramr2_cli.server.serve import ServeConfig
    assert ServeConfig().host == "127.0.0.1"
    assert _listening(port) == ["127.0.0.1"]                 # one listening socket, on loopback only
