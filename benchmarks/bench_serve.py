"""Reward-server throughput: micro-batching (max_batch 16) vs none (max_batch 1), real uvicorn on 127.0.0.1.

    .venv/bin/python benchmarks/bench_serve.py                         # tiny random Llama, hf engine
    .venv/bin/python benchmarks/bench_serve.py --model embedded:smollm2-135m --clients 8 --requests 4

A bounded loopback load: `--clients` concurrent clients each send `--requests` POST /score requests (one
(prompt, response, reference) item each, both orders = 2 judge prompts) one after another, then stop. Reports
requests/s, mean latency, and the engine calls the server made. Writes benchmarks/results/bench_serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx
import torch
import uvicorn

from gramr2_cli import recipe
from gramr2_cli.core import models
from gramr2_cli.engines import close_all, load_engine
from gramr2_cli.server import serve

RESULTS = Path(__file__).parent / "results" / "bench_serve.json"


async def load(base: str, clients: int, requests: int) -> list[float]:
    async def client(c: int) -> list[float]:
        lat = []
        async with httpx.AsyncClient(base_url=base, timeout=600) as h:
            for r in range(requests):
                body = {"prompt": [f"What is {c} + {r}?"], "response": [f"{c} + {r} = {c + r}."],
                        "reference": [f"{c} + {r} = {c + r + 1}."]}
                t0 = time.perf_counter()
                resp = await h.post("/score", json=body)
                resp.raise_for_status()
                lat.append(time.perf_counter() - t0)
        return lat
    return [x for lats in await asyncio.gather(*[client(c) for c in range(clients)]) for x in lats]


def run_server(engine, cfg, clients: int, requests: int) -> dict:
    app = serve.create_app(engine, cfg)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="error"))
    t = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.01)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        asyncio.run(load(base, 1, 1))                       # warm-up
        before = dict(app.state.batcher.stats)
        t0 = time.perf_counter()
        lat = asyncio.run(load(base, clients, requests))
        wall = time.perf_counter() - t0
        stats = app.state.batcher.stats
    finally:
        server.should_exit = True
        t.join(timeout=30)
    n = clients * requests
    return {"max_batch": cfg.serve.max_batch, "max_wait_ms": cfg.serve.max_wait_ms, "requests": n,
            "wall_s": round(wall, 2), "requests_per_s": round(n / wall, 2),
            "mean_latency_s": round(sum(lat) / len(lat), 3), "engine_calls": stats["batches"] - before["batches"],
            "largest_batch": stats["largest_batch"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="", help="model spec (default: a tiny random Llama)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=4, help="requests per client")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--out", type=Path, default=RESULTS, help="result JSON path")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("GRAMR2_THREADS", "1")))
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(models.build_tiny(Path(tmp) / "tiny"))
        label = args.model or "tiny random Llama (2 layers, hidden 128, SmolLM2 tokenizer)"
        base = ["generate.engine=hf", f"generate.max_new_tokens={args.max_new_tokens}", "generate.batch_size=32"]
        cfg0 = recipe.load_recipe(None, base, model=model)
        engine = load_engine(cfg0.model, cfg0.generate, cfg0.seed)
        rows = []
        for mb, wait in ((1, 0), (args.max_batch, 20)):
            cfg = recipe.load_recipe(None, base + [f"serve.max_batch={mb}", f"serve.max_wait_ms={wait}"], model=model)
            rows.append(run_server(engine, cfg, args.clients, args.requests))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        close_all()
    out = {"benchmark": "reward server: micro-batching vs none", "model": label, "engine": "hf",
           "orders": "both", "clients": args.clients, "requests_per_client": args.requests,
           "max_new_tokens": args.max_new_tokens, "threads": torch.get_num_threads(), "rows": rows,
           "speedup": round(rows[1]["requests_per_s"] / rows[0]["requests_per_s"], 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}; speedup {out['speedup']}x", file=sys.stderr)


if __name__ == "__main__":
    main()
