"""Generation speed: naive `model.generate` loop vs the gramr2 hf engine vs the gramr2 vllm engine vs bare vLLM.

    .venv/bin/python benchmarks/bench_engines.py                       # embedded:smollm2-135m, everything
    .venv/bin/python benchmarks/bench_engines.py --skip naive --hf-batch-sizes 8 16

The same `--prompts` judge prompts of ≈400 tokens (pairs with long responses rendered by `judge.judge_prompts`),
`--new-tokens` sampled tokens each, EOS ignored so every engine writes exactly that many (T=0.8, seed 0):
- naive: one prompt at a time through `model.generate` (fp32, torch threads = all cores);
- hf: `HFEngine` (fp32) at batch 8 and each of `--hf-batch-sizes`, the best one reported;
- vllm: `VLLMEngine` (`--dtype`, default as `generate.dtype: auto`; eager, both cores), per-prompt seeds, logprobs on (what gramr2 always asks for);
- bare: `vllm.LLM` with the same engine settings and sampling, text prompts, no gramr2 code.
Writes benchmarks/results/engines.json and appends one markdown line to benchmarks/results/engines.md.
Numbers from a shared machine are noisy: compare the ratios measured within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = Path(__file__).parent / "results"
TEMPERATURE, SEED = 0.8, 0

_FILLER = ["First, the response restates the question in its own words and names the quantities involved.",
           "Then it works through the steps one at a time, checking each intermediate value against the prompt.",
           "It mentions a common mistake that people make with this kind of question and explains how to avoid it.",
           "Finally it gives the answer in one short sentence and adds a brief note on how confident it is.",
           "The tone is friendly and the explanation uses plain words rather than technical jargon.",
           "It also offers a quick way to double-check the result without redoing the whole computation."]


def long_pairs(tokenizer, k: int, target: int = 400) -> list[dict]:
    """`k` pairs whose rendered gramr2-v1 judge prompt is the first length ≥ `target` tokens."""
    from gramr2_cli.judging import judge
    out = []
    for i in range(k):
        q = f"Question {i}: what is {17 + i} times {3 + i % 7}, and how would you check it?"
        reps = 1
        while True:
            body = " ".join(_FILLER[(i + j) % len(_FILLER)] for j in range(reps))
            pair = {"prompt": q, "response_a": f"The answer is {(17 + i) * (3 + i % 7)}. {body}",
                    "response_b": f"The answer is {(17 + i) * (3 + i % 7) + 1}. {body}"}
            text = judge.judge_prompts(tokenizer, [pair], ("ab",), "gramr2-v1")[0]
            if len(tokenizer(text, add_special_tokens=False)["input_ids"]) >= target or reps > 40:
                break
            reps += 1
        out.append(pair)
    return out


def row(name: str, seconds: float, n_prompts: int, new_tokens: int, startup: float | None, **extra) -> dict:
    r = {"engine": name, "seconds": round(seconds, 2), "pairs_per_s": round(n_prompts / seconds, 3),
         "new_tok_per_s": round(new_tokens / seconds, 1), "startup_s": None if startup is None else round(startup, 1)}
    r.update(extra)
    print(f"{name:<22} {r['pairs_per_s']:>8.3f} pairs/s {r['new_tok_per_s']:>8.1f} new tok/s "
          f"startup {r['startup_s']} s {extra or ''}", flush=True)
    return r


def bench_naive(model_path: str, texts: list[str], new: int) -> dict:
    import torch

    from gramr2_cli.core import models
    t0 = time.perf_counter()
    tok, model = models.load_tokenizer(model_path), models.load_model(model_path, "float32")
    startup = time.perf_counter() - t0
    torch.manual_seed(SEED)
    t0, total = time.perf_counter(), 0
    with torch.inference_mode():
        for text in texts:
            enc = tok(text, add_special_tokens=False, return_tensors="pt")
            out = model.generate(**enc, do_sample=True, temperature=TEMPERATURE, top_p=1.0, max_new_tokens=new,
                                 min_new_tokens=new, pad_token_id=tok.pad_token_id)
            total += out.shape[1] - enc["input_ids"].shape[1]
    return row("naive generate loop", time.perf_counter() - t0, len(texts), total, startup)


def bench_hf(model_path: str, texts: list[str], new: int, batch_sizes: list[int]) -> list[dict]:
    from gramr2_cli.engines.hf import HFEngine
    t0 = time.perf_counter()
    eng = HFEngine(model_path, dtype="float32")
    startup = time.perf_counter() - t0
    rows = []
    for bs in batch_sizes:
        eng.batch_size = bs
        t0 = time.perf_counter()
        gens = eng.generate(texts, n=1, temperature=TEMPERATURE, max_new_tokens=new, seed=SEED, ignore_eos=True)
        total = sum(g.num_tokens for r in gens for g in r)
        rows.append(row(f"gramr2 hf (batch {bs})", time.perf_counter() - t0, len(texts), total, startup,
                        batch_size=bs))
    eng.close()
    return rows


def _time_calls(obj, name: str) -> list[float]:
    """Wrap `obj.name` so the seconds spent inside it add up in the returned one-element list."""
    spent, fn = [0.0], getattr(obj, name)

    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            spent[0] += time.perf_counter() - t
    setattr(obj, name, timed)
    return spent


def bench_vllm(model_path: str, texts: list[str], new: int, dtype: str) -> dict:
    from gramr2_cli.engines.vllm import VLLMEngine
    eng = VLLMEngine(model_path, dtype=dtype, kv_cache_gb=2)
    eng.generate(texts[:1], max_new_tokens=4)   # warm-up, as a long run would amortise it
    inner = _time_calls(eng.llm, "generate")     # vLLM's own share of the call, to isolate gramr2's code
    t0 = time.perf_counter()
    gens = eng.generate(texts, n=1, temperature=TEMPERATURE, max_new_tokens=new, seed=SEED, ignore_eos=True)
    total = sum(g.num_tokens for r in gens for g in r)
    seconds = time.perf_counter() - t0
    r = row(f"gramr2 vllm ({dtype})", seconds, len(texts), total, eng.startup_s, vllm_generate_s=round(inner[0], 2),
            gramr2_overhead_fraction=round((seconds - inner[0]) / seconds, 4))
    eng.close()
    return r


def bench_bare_vllm(model_path: str, texts: list[str], new: int, dtype: str) -> dict:
    from gramr2_cli.core import models
    from gramr2_cli.engines import row_seed
    from gramr2_cli.engines.vllm import _set_env, _startup_log
    _set_env(2, on_gpu=False)   # the same environment the engine sets (KV cache, both cores, quiet logs)
    with _startup_log(models.cache_dir() / "logs" / f"vllm-bare-{os.getpid()}.log"):
        from vllm import LLM, SamplingParams
        t0 = time.perf_counter()
        llm = LLM(model=model_path, dtype=dtype, seed=SEED, enforce_eager=True, enable_chunked_prefill=False,
                  enable_prefix_caching=True, distributed_executor_backend="uni")   # in process, as VLLMEngine
    startup = time.perf_counter() - t0
    llm.generate(texts[:1], SamplingParams(max_tokens=4), use_tqdm=False)
    params = [SamplingParams(temperature=TEMPERATURE, max_tokens=new, ignore_eos=True, seed=row_seed(SEED, t))
              for t in texts]
    t0 = time.perf_counter()
    outs = llm.generate(texts, params, use_tqdm=False)
    total = sum(len(c.token_ids) for o in outs for c in o.outputs)
    r = row(f"bare vLLM ({dtype})", time.perf_counter() - t0, len(texts), total, startup)
    llm.llm_engine.engine_core.shutdown()
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="embedded:smollm2-135m")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--hf-batch-sizes", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--naive-prompts", type=int, default=0,
                    help="run the naive loop on the first N prompts only (its per-token rate does not depend on "
                         "how many prompts it sees; saves minutes); 0 = all")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads for naive/hf (default: GRAMR2_THREADS or all cores); vLLM binds all cores")
    ap.add_argument("--skip", nargs="*", default=[], choices=["naive", "hf", "vllm", "bare"])
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                    help="dtype of both vLLM runs (auto: as generate.dtype auto, bf16 only with native bf16)")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]

    import torch

    from gramr2_cli.core import models
    threads = args.threads or int(os.environ.get("GRAMR2_THREADS") or os.cpu_count() or 1)
    torch.set_num_threads(threads)
    path = models.resolve(args.model)
    tok = models.load_tokenizer(path)
    from gramr2_cli.judging import judge
    texts = judge.judge_prompts(tok, long_pairs(tok, args.prompts), ("ab",), "gramr2-v1")
    lens = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    print(f"{len(texts)} judge prompts, {min(lens)}-{max(lens)} tokens (mean {sum(lens) / len(lens):.0f}), "
          f"{args.new_tokens} new tokens each, torch threads {threads}", flush=True)
    rows: dict[str, object] = {}
    from gramr2_cli.engines import resolve_choice
    vdtype = resolve_choice("vllm", args.dtype)[1]
    if "naive" not in args.skip:
        rows["naive"] = bench_naive(path, texts[:args.naive_prompts or None], args.new_tokens)
    if "hf" not in args.skip:
        sizes = sorted(set([8] + args.hf_batch_sizes))
        hf_rows = bench_hf(path, texts, args.new_tokens, sizes)
        rows["hf_batch8"] = next(r for r in hf_rows if r["batch_size"] == 8)
        rows["hf_best"] = max(hf_rows, key=lambda r: r["new_tok_per_s"])
        rows["hf_all"] = hf_rows
    if "vllm" not in args.skip:
        rows["vllm"] = bench_vllm(path, texts, args.new_tokens, vdtype)
    if "bare" not in args.skip:
        rows["bare_vllm"] = bench_bare_vllm(path, texts, args.new_tokens, vdtype)

    def ratio(a: str, b: str) -> float | None:
        ra, rb = rows.get(a), rows.get(b)
        return round(ra["new_tok_per_s"] / rb["new_tok_per_s"], 2) if ra and rb else None

    ratios = {"hf_best_over_naive": ratio("hf_best", "naive"), "hf_batch8_over_naive": ratio("hf_batch8", "naive"),
              "vllm_over_bare_vllm": ratio("vllm", "bare_vllm"), "vllm_over_hf_best": ratio("vllm", "hf_best")}
    targets = {"hf_best_over_naive >= 3": ratios["hf_best_over_naive"],
               "vllm_over_bare_vllm >= 0.97": ratios["vllm_over_bare_vllm"],
               "vllm_over_hf_best >= 5": ratios["vllm_over_hf_best"]}
    print("ratios:", json.dumps(ratios), flush=True)
    result = {"model": args.model, "prompts": len(texts), "prompt_tokens": {"min": min(lens), "max": max(lens),
              "mean": round(sum(lens) / len(lens), 1)}, "new_tokens": args.new_tokens, "temperature": TEMPERATURE,
              "torch_threads": threads, "vllm_dtype": vdtype, "naive_prompts": len(texts[:args.naive_prompts or None]),
              "load_average": {"start": load0, "end": os.getloadavg()[0]}, "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "results": rows, "ratios": ratios,
              "targets": targets}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "engines.json").write_text(json.dumps(result, indent=2) + "\n")
    tps = {k: (v["new_tok_per_s"] if isinstance(v, dict) else "–") for k, v in rows.items()}
    shown = {k: "–" if v is None else v for k, v in ratios.items()}
    best_bs = rows["hf_best"]["batch_size"] if "hf_best" in rows else None
    line = (f"| {result['date']} | {args.model} | {len(texts)}×{round(sum(lens) / len(lens))} tok → {args.new_tokens} "
            f"| naive {tps.get('naive', '–')} | hf b8 {tps.get('hf_batch8', '–')} | hf best {tps.get('hf_best', '–')}"
            f"{f' (b{best_bs})' if best_bs else ''} | vllm {tps.get('vllm', '–')} | bare vllm {tps.get('bare_vllm', '–')} "
            f"| new tok/s ({vdtype}); hf/naive {shown['hf_best_over_naive']}×, vllm/bare {shown['vllm_over_bare_vllm']}, "
            f"vllm/hf {shown['vllm_over_hf_best']}× | load avg {load0:.1f}-{os.getloadavg()[0]:.1f}\n")
    md = RESULTS / "engines.md"
    if not md.exists():
        md.write_text("# bench_engines.py results (new tokens per second; one line per run)\n\n")
    with md.open("a") as f:
        f.write(line)
    print(line, end="")


if __name__ == "__main__":
    main()
