"""plan: what a run will cost, from its recipe and data, without loading a model's weights (`gramr2 plan`).

For a training stage it builds the examples exactly as the trainer does (`train.objectives.build_dataset`,
same skips) with the model's real tokenizer when the model is a local directory (only the tokenizer files and
`config.json` are read), else with a characters/4 estimate, and reports:

- examples used and skipped (by reason, `too_long` = longer than `train.max_length`), tokens per epoch;
- optimizer steps by the HF Trainer's own formula (`optimizer_steps`), tokens processed;
- training FLOPs ≈ 6·N·tokens (Kaplan et al. 2020; attention's sequence-quadratic term left out), GPU-hours at a
  stated model-FLOPs utilisation (`--mfu`, default 40%: ours, a typical dense-transformer SFT figure) on a
  stated GPU (`GPUS`: NVIDIA datasheet dense bf16 peaks);
- per-GPU memory for weights + gradients + AdamW state under ZeRO stage 0-3 / FSDP (`state_memory`).

For a generating stage (prove, self-label, evaluate, rank) it counts prompts, samples and an upper bound on
generated tokens (every sample running to its `max_new_tokens`). `self-train` plans each iteration.
N comes from the model's safetensors headers (exact), else its `config.json`, else `KNOWN_MODELS` (offline).
Warnings name problems: examples that will be skipped, memory over the GPU, prompts longer than the context.
The model-size, step-schedule and memory arithmetic lives in `plan_cost` (import it from there).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from ..core import readers
from ..core.errors import GramrError
from ..core.plan_cost import (
    GPUS,
    ZERO,
    ModelFacts,
    lora_param_count,
    model_facts,
    optimizer_steps,
    state_memory,
    tokens_processed,
)
from ..judging import judge
from ..judging.judge import ORDERS
from ..train import objectives
from .prove import prover_prompts

# ---------------------------------------------------------------- counting

class CharTokenizer:
    """Stand-in tokenizer when the real one is not available: one id per character (so the builders' prefix
    check holds); the caller divides lengths by 4 (≈ 4 characters per token for English text)."""
    eos_token = ""
    eos_token_id = None   # no eos id appended: the estimate counts characters only
    chat_template = None

    def __call__(self, text: str, add_special_tokens: bool = False, split_special_tokens: bool = False) -> dict:
        return {"input_ids": [0] * len(text)}


CHARS_PER_TOKEN = 4


def count_examples(tok, groups: list[tuple[list[dict], float]], objective: str, max_length: int, prompt: str
                   ) -> dict:
    """Examples of `objective` built as the trainer builds them: used, skipped by reason, lengths (tokens).
    Each group is (records, scale): a sample counted once and its counts multiplied by `scale` (--examples).
    With `tok=None` lengths are characters/4 and the chat template is left out (estimate)."""
    per_char = 1 if tok is not None else CHARS_PER_TOKEN
    lengths: list[int] = []
    skipped, notes = Counter(), Counter()
    for recs, scale in groups:
        rows, sk, nt = objectives.build_dataset(tok or CharTokenizer(), recs, objective, max_length * per_char,
                                                prompt)
        lens = [math.ceil(len(r["input_ids"]) / per_char) for r in rows]
        lengths += [lens[i % len(lens)] for i in range(round(len(lens) * scale))] if lens else []
        skipped.update({k: round(v * scale) for k, v in sk.items()})
        notes.update({k: round(v * scale) for k, v in nt.items()})
    return {"used": len(lengths), "skipped": dict(skipped), "notes": dict(notes), "lengths": lengths,
            "exact": tok is not None}


def prompt_lengths(tok, texts: list[str]) -> list[int]:
    """Token counts of rendered prompts (characters/4 without a tokenizer)."""
    if tok is None:
        return [math.ceil(len(t) / CHARS_PER_TOKEN) for t in texts]
    return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]


def generation(stage: str, cfg, recs: list[dict], tok, context: int | None, scale: float = 1.0) -> dict:
    """Prompts, samples and a generated-token upper bound of one generating stage over `recs`.

    prove: one prompt per labeled pair, `prove.k` samples, then 2·k scored sequences (Eq. 5's two contexts);
    self-label / evaluate / rank: one prompt per pair and order, `samples` / `votes` samples each. Counts are
    multiplied by `scale` (--examples)."""
    tk = tok or CharTokenizer()
    if stage == "prove":
        recs = [r for r in recs if r["label"] is not None]
        texts = [prover_prompts(tk, r)[0] for r in recs]
        n, max_new, scored = cfg.prove.k, cfg.prove.max_new_tokens, 2 * cfg.prove.k * len(recs)
    else:
        section = {"self-label": cfg.self_label, "evaluate": cfg.evaluate, "rank": cfg.rank}[stage]
        orders = ORDERS[section.orders]
        n = section.samples if stage == "self-label" else section.votes
        max_new, scored = cfg.generate.max_new_tokens, 0
        if cfg.generate.verdict_only:   # one forced answer token per order, nothing generated
            n, max_new = 1, 0
        texts = judge.judge_prompts(tk, recs, orders, cfg.prompt) if recs else []
    lens = prompt_lengths(tok, texts)
    over = sum(1 for x in lens if context and x + max_new > context)
    prompts_n = round(len(texts) * scale)
    return {"stage": stage, "prompts": prompts_n, "samples_per_prompt": n, "samples": prompts_n * n,
            "max_new_tokens": max_new, "prompt_tokens": round(sum(lens) * scale),
            "max_generated_tokens": prompts_n * n * max_new, "scored_sequences": round(scored * scale),
            "prompts_over_context": round(over * scale), "context": context}


def training(cfg, facts: ModelFacts, groups: list[tuple[list[dict], float]], hw: dict) -> dict:
    """Examples, steps, tokens, FLOPs, GPU-hours and per-GPU state memory of one training run on the records
    of `groups` ((records, scale) pairs, see `count_examples`)."""
    t = cfg.train
    counts = count_examples(facts.tokenizer, groups, t.objective, t.max_length, cfg.prompt)
    sched = optimizer_steps(counts["used"], t.batch_size, t.grad_accum, hw["gpus"], t.epochs, t.max_steps)
    tokens, exact = tokens_processed(counts["lengths"], sched, t.batch_size, t.grad_accum, hw["gpus"])
    trainable = (lora_param_count(facts.config, t.lora.r, list(t.lora.target_modules)) if t.lora.enabled
                 else facts.params)
    per_token = 4 if t.lora.enabled else 6    # LoRA: no weight-gradient matmuls for frozen weights (ours)
    flops = per_token * facts.params * tokens
    gpu = GPUS[hw["gpu"]]
    gpu_hours = flops / (gpu.bf16_tflops * 1e12 * hw["mfu"]) / 3600
    lengths = counts.pop("lengths")
    return {**counts, "records": round(sum(len(r) * f for r, f in groups)), "tokens_per_epoch": sum(lengths),
            "max_example_tokens": max(lengths, default=0),
            "mean_example_tokens": round(sum(lengths) / len(lengths), 1) if lengths else 0,
            **sched, "tokens": tokens, "tokens_exact": exact, "trainable_params": trainable,
            "flops": float(flops), "flops_per_token_factor": per_token, "gpu_hours": round(gpu_hours, 3),
            "wall_hours": round(gpu_hours / hw["gpus"], 3),
            "memory": {k: round(v, 2) for k, v in state_memory(facts.params, trainable, hw["gpus"],
                                                               hw["zero"]).items()}}


def warnings_for(cfg, facts: ModelFacts, tr: dict | None, gens: list[dict], hw: dict) -> list[str]:
    """Problems worth a line each, named with the key to change."""
    out = []
    if facts.tokenizer is None:
        out.append(f"token counts are estimates (characters/4, chat template left out): no local tokenizer "
                   f"for {facts.spec}")
    if tr:
        n_in = tr["used"] + sum(tr["skipped"].values())
        if tr["skipped"].get("too_long"):
            out.append(f"{tr['skipped']['too_long']:,} of {n_in:,} examples exceed train.max_length "
                       f"{cfg.train.max_length} and will be skipped")
        if tr["notes"].get("answer_only"):
            out.append(f"{tr['notes']['answer_only']:,} examples have no rationale and train the answer only")
        gpu = GPUS[hw["gpu"]]
        if tr["memory"]["total_gib"] > gpu.memory_gib:
            out.append(f"weights + gradients + optimizer state need {tr['memory']['total_gib']:.1f} GiB per GPU, "
                       f"over the {gpu.name}'s {gpu.memory_gib:g} GiB: raise --gpus, use --zero 3 or LoRA")
        elif tr["memory"]["total_gib"] > 0.8 * gpu.memory_gib:
            out.append(f"weights + gradients + optimizer state use {tr['memory']['total_gib']:.1f} of "
                       f"{gpu.memory_gib:g} GiB per GPU, leaving little room for activations")
        if cfg.train.lora.enabled:
            out.append(f"LoRA: {tr['trainable_params']:,} of {facts.params:,} parameters train "
                       f"({100 * tr['trainable_params'] / facts.params:.2f}%)")
        if cfg.train.precision == "fp32" and facts.params > 1e9:
            out.append("train.precision fp32 on a >1B model: use bf16 (or auto) on GPUs")
        if not tr["used"]:
            out.append("no usable training example: the run would stop with an error")
    for g in gens:
        if g["prompts_over_context"]:
            out.append(f"{g['stage']}: {g['prompts_over_context']:,} of {g['prompts']:,} prompts + max_new_tokens "
                       f"{g['max_new_tokens']} exceed the model's context {g['context']} and will not be judged")
    return out


TRAINING = ("prover-train", "pretrain", "finetune", "adapt")
GENERATING = ("prove", "self-label", "evaluate", "rank")
STAGES = (*TRAINING, *GENERATING, "self-train")


def infer_stage(recipe: Path | str) -> str:
    """The stage a recipe is for, from its own top-level sections (not `extends`): self_train → self-train,
    train (objective prover → prover-train) → pretrain, else the first generating section present."""
    import yaml
    try:
        data = yaml.safe_load(Path(recipe).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise GramrError(f"{recipe}: cannot read recipe ({type(e).__name__})") from None
    if "self_train" in data:
        return "self-train"
    if "train" in data:
        return "prover-train" if (data["train"] or {}).get("objective") == "prover" else "pretrain"
    for key, stage in (("prove", "prove"), ("self_label", "self-label"), ("evaluate", "evaluate"),
                       ("rank", "rank")):
        if key in data:
            return stage
    raise GramrError(f"{recipe}: cannot tell which stage it is for", hint=f"pass --stage ({', '.join(STAGES)})")


def scale_of(recs: list[dict], n: int | None) -> float:
    """--examples: DATA is a sample of `n` records; its counts are multiplied by n / len(DATA)."""
    if n is None:
        return 1.0
    if not recs or n < 1:
        raise GramrError("--examples N (N >= 1) scales the given data: pass DATA (a sample of the N records)")
    return n / len(recs)


def with_rationale(recs: list[dict], tokens: int, tok, label_all: bool = False) -> list[dict]:
    """Records as a later stage will hand them to training: those without a rationale get one of about `tokens`
    tokens (`prove` adds at most prove.max_new_tokens), and with `label_all` every pair a label."""
    filler = " ".join(["x"] * tokens) if tok is not None else "x" * (tokens * CHARS_PER_TOKEN)
    return [dict(r, label="A" if label_all else r["label"], rationale=r.get("rationale") or filler) for r in recs]


def self_train(cfg, facts: ModelFacts, unlabeled: list[dict], scale: float, hw: dict
               ) -> tuple[list[dict], list[str]]:
    """Per iteration: self-label and prove on its batch of `unlabeled`, then pretrain on `self_train.train_data`
    plus every batch so far, counted as if the filter kept every pair (an upper bound)."""
    st, notes = cfg.self_train, []
    paths = [p for p in st.train_data if Path(p).exists()]
    if len(paths) != len(st.train_data):
        notes.append(f"self_train.train_data not found ({', '.join(set(st.train_data) - set(paths))}): "
                     "training counts cover the self-labeled pairs only")
    base = readers.read_all(paths, skipped=Counter()) if paths else []
    per = math.ceil(len(unlabeled) / st.iterations)
    kept = with_rationale(unlabeled, cfg.prove.max_new_tokens, facts.tokenizer, label_all=True)
    ctx = facts.config.get("max_position_embeddings")
    out = []
    for i in range(st.iterations):
        batch = unlabeled[i * per:(i + 1) * per]
        gens = [generation("self-label", cfg, batch, facts.tokenizer, ctx, scale),
                generation("prove", cfg, with_rationale(batch, 0, None, label_all=True), facts.tokenizer, ctx,
                           scale)]
        groups = [(base, 1.0), (kept[:(i + 1) * per], scale)]
        out.append({"iteration": i + 1, "generation": gens, "training": training(cfg, facts, groups, hw)})
    return out, notes


def run(cfg, inputs: list, *, stage: str, gpus: int = 8, gpu: str = "h100", mfu: float = 0.4, zero: str = "3",
        examples: int | None = None, recipe: str = "", records: list[dict] | None = None,
        rationale_tokens: int | None = None) -> dict:
    """The plan of running `stage` with `cfg` on `inputs` (or on in-memory `records`; see the module docstring),
    as a JSON-ready dict: model, hardware, training, generation, iterations, warnings. `rationale_tokens` plans a
    training stage as if pairs without a rationale had one that long (before `prove` has run). Raises GramrError for an
    unknown stage/GPU/ZeRO setting, gpus < 1, mfu outside (0, 1], or a model of unknown size."""
    for flag, value, valid in (("--stage", stage, STAGES), ("--gpu", gpu, tuple(GPUS)), ("--zero", zero, ZERO)):
        if value not in valid:
            raise GramrError(f"{flag}: unknown {value!r}; choose from {', '.join(valid)}")
    if gpus < 1 or not 0.0 < mfu <= 1.0:
        raise GramrError(f"--gpus must be >= 1 and --mfu in (0, 1], got {gpus} and {mfu}")
    hw = {"gpu": gpu, "gpus": gpus, "mfu": mfu, "zero": zero}
    init = cfg.train.init if stage in TRAINING and cfg.train.init not in ("backbone", "continue") else None
    spec = cfg.prove.prover if stage == "prove" else (init or cfg.model)
    facts = model_facts(spec)
    inputs = inputs or (list(cfg.self_train.unlabeled) if stage == "self-train" and records is None else [])
    if records is None:
        records = readers.read_all(inputs, skipped=Counter()) if inputs else []
    recs, scale = records, scale_of(records, examples)
    if not recs and stage != "self-train":
        raise GramrError(f"plan: {stage} needs DATA (the records it will read)")
    ctx = facts.config.get("max_position_embeddings")
    tr, gens, iterations, notes = None, [], [], []
    if stage in TRAINING:
        if rationale_tokens is not None:
            notes.append(f"pairs without a rationale are planned with one of {rationale_tokens} tokens "
                         f"(--rationale-tokens)")
            recs = with_rationale(recs, rationale_tokens, facts.tokenizer)
        tr = training(cfg, facts, [(recs, scale)], hw)
    elif stage == "self-train":
        iterations, notes = self_train(cfg, facts, recs, scale, hw)
    else:
        gens = [generation(stage, cfg, recs, facts.tokenizer, ctx, scale)]
    warns = warnings_for(cfg, facts, tr, gens, hw) + notes
    for it in iterations:
        warns += [f"iteration {it['iteration']}: {w}" for w in
                  warnings_for(cfg, facts, it["training"], it["generation"], hw)[1 if facts.tokenizer is None else 0:]]
    return {"recipe": str(recipe), "stage": stage,
            "model": {"spec": facts.spec, "params": facts.params, "params_source": facts.params_source,
                      "tokens": "tokenizer" if facts.tokenizer is not None else "estimate (characters/4)",
                      "context": ctx},
            "hardware": {**hw, "gpu_name": GPUS[gpu].name, "bf16_tflops": GPUS[gpu].bf16_tflops,
                         "memory_gib": GPUS[gpu].memory_gib},
            "records": round(len(recs) * scale), "training": tr, "generation": gens, "iterations": iterations,
            "total_gpu_hours": round((tr or {}).get("gpu_hours", 0.0)
                                     + sum(it["training"]["gpu_hours"] for it in iterations), 3),
            "warnings": warns}
