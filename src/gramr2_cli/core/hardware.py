"""What the hardware can do: native bf16 on this CPU, the matmul roofline, and a model's training FLOPs per token.

All of it is ours (the paper trains on GPUs and says nothing about CPUs). Measured on this project's machines:
- a CPU with AMX or AVX512-BF16 runs `torch.autocast("cpu", bfloat16)` about 1.6× faster than fp32
  (shared/notes/learnability.md: 310 vs 192 tok/s on SmolLM2-135M);
- a CPU without them (AVX2, e.g. the AMD EPYC runners) emulates bf16: a 512×512 bf16 matmul ran at 0.4 GFLOP/s
  against 10 GFLOP/s in fp32 on the same core — 25× slower. So `train.precision: auto` and `generate.dtype:
  auto` mean bf16 on a CPU only where it is native. (For vLLM this follows from the torch matmul probe; vLLM's
  own bf16 speed on an AVX2 CPU was not measured: its engine hit its step timeout under load in both dtypes.)
"""

from __future__ import annotations

import os
import time
from functools import lru_cache

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")   # torch.cpu.get_capabilities() keys = /proc/cpuinfo flags
FORCE_ENV = "GRAMR2_NATIVE_BF16"   # "1"/"0": what `auto` takes this CPU to be (tests simulate another runner)


@lru_cache(maxsize=1)
def cpu_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX or AVX512-BF16): `GRAMR2_NATIVE_BF16=1|0` when set (so a
    test, or a user, can see what `auto` does on another CPU), else torch's CPU capabilities when this torch
    reports them, else the flags in /proc/cpuinfo; False when neither can be read."""
    forced = os.environ.get(FORCE_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    import torch

    get = getattr(torch.cpu, "get_capabilities", None)   # torch >= 2.8; older builds fall back to cpuinfo
    if get is not None:
        caps = get()
        return any(bool(caps.get(f)) for f in NATIVE_BF16_FLAGS)
    return any(f in cpu_description()["flags"] for f in NATIVE_BF16_FLAGS)


def cpu_description() -> dict:
    """The CPU a measurement ran on, for benchmark outputs: its model name, core count and the flags that decide
    torch's CPU speed (every avx* and amx* flag of /proc/cpuinfo; empty where that file cannot be read)."""
    import platform

    name, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = sorted({x for x in line.split(":", 1)[1].split() if x.startswith(("avx", "amx"))})
                    break
    except OSError:
        pass
    return {"model": name, "cores": os.cpu_count(), "flags": flags}


def cpu_line(d: dict | None = None) -> str:
    """A `cpu_description` (this CPU's when None, e.g. one a benchmark saved) as one line: 'model; flags; N cores'."""
    d = cpu_description() if d is None else d
    return f"{d.get('model')}; {' '.join(d.get('flags') or []) or 'no avx'}; {d.get('cores')} cores"


def auto_bf16(on_gpu: bool) -> bool:
    """`train.precision: auto`: bf16 on a GPU that supports it and on a CPU with native bf16; fp32 elsewhere."""
    import torch

    if on_gpu:
        return bool(torch.cuda.is_bf16_supported())
    return cpu_native_bf16()


def matmul_gflops(bf16: bool, size: int | None = None, seconds: float = 0.3) -> float:
    """Measured GFLOP/s of a `size`² matmul on this device in the training precision (a ~0.3 s probe at start;
    `size` 512 on a CPU — SmolLM2's width is 576 — and 4096 on a GPU, where small matmuls are launch-bound).

    It is the roofline of a dense layer of that width under the current load: training cannot beat it, so the
    trainer reports its tokens/s as a fraction of `roofline_tokens_per_second`. On a shared CPU it moves with
    the load like every other number; the ratio within one run is what to read."""
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    size = size or (4096 if dev == "cuda" else 512)
    dtype = torch.bfloat16 if bf16 else torch.float32
    a = torch.randn(size, size, device=dev, dtype=dtype)
    b = torch.randn(size, size, device=dev, dtype=dtype)
    a @ b   # first call sets up kernels
    n, t0 = 0, time.perf_counter()
    while True:
        a @ b
        n += 1
        if dev == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return 2 * size ** 3 * n / elapsed / 1e9


def train_flops_per_token(model) -> int:
    """6·N FLOPs per trained token (forward 2N + backward 4N, N = parameters taking part in the matmuls,
    embeddings excluded unless tied to the output layer): the MFU convention (`gramr2 plan` uses it too).

    Attention's L² term is left out (small at these lengths). Packed training computes the output layer only at
    target positions, so it does less than 6·N per token: for SmolLM2-135M the output layer is ~21% of N, and a
    model whose output layer dominates (the tiny test model) can pass a fraction of 1."""
    n = 0
    for name, p in model.named_parameters():
        if "embed_tokens" in name and not getattr(model.config, "tie_word_embeddings", False):
            continue
        n += p.numel()
    return 6 * n
