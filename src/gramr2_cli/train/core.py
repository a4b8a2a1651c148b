"""The one trainer core (DESIGN §5): setup, train, save, resume — on HF `Trainer`.

`train()` reads records, builds the objective's examples once (masks included), trains full weights or LoRA
(`precision: auto` = bf16 on a GPU and on a CPU with native bf16 (AMX / AVX512-BF16, autocast), fp32 elsewhere:
`hardware.auto_bf16`), with the output layer run only at target positions (`packing.target_loss`) on right-padded
or (`train.packing`) packed batches, checkpoints every `save_steps` under
`<output>/checkpoints/`, and writes a plain HF model directory (+ tokenizer and chat template) that
`models.load_model` and the engines load. Next to the weights: `training_summary.json` (loss curve, non-padding
tokens/s and its fraction of the measured matmul roofline, examples used/skipped, minutes), `summary.json`,
`config.yaml` and `manifest.json`, whose `done: true` is written last so `shards.is_done(output)` works in Make
pipelines; all of them through `outdir` (atomic writes, the one manifest reader). Under `torchrun`/`accelerate
launch` only rank 0 writes. A record without a label is skipped and counted (`no_label`) by the objective, never
fatal.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .. import __version__
from ..core import config, hardware, models, outdir, outguard, readers, shards
from ..core.errors import GramrError
from . import objectives, packing
from .settings import PRECISIONS, TrainConfig

if TYPE_CHECKING:
    from ..recipe import Config

CKPT_DIR = "checkpoints"
SECTIONS = ("model", "prompt", "seed", "train")   # what the output's config hash covers


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def latest_checkpoint(output: Path) -> Path | None:
    """The newest complete checkpoint (`trainer_state.json` is saved last, so a kill mid-save is skipped)."""
    d = Path(output) / CKPT_DIR
    done = [p for p in d.glob("checkpoint-*") if (p / "trainer_state.json").exists()] if d.exists() else []
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def check_checkpoint(ckpt: Path) -> None:
    """Cheap integrity check of a checkpoint before resuming from it: trainer_state.json parses, every
    safetensors file's header matches its size, every torch pickle (optimizer, scheduler, RNG) is a whole zip.
    Raises GramrError naming the bad file (a truncated or garbage checkpoint would otherwise fail deep inside
    the Trainer with a traceback)."""
    import zipfile

    def bad(f: Path, why: str) -> GramrError:
        return GramrError(f"{ckpt}: corrupt checkpoint ({f.name}: {why})",
                          hint=f"delete {ckpt} to resume from the checkpoint before it, or use --overwrite "
                               f"to start again")
    try:
        json.loads((ckpt / "trainer_state.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(ckpt / "trainer_state.json", type(e).__name__) from None
    for f in sorted(ckpt.glob("*.safetensors")):
        from safetensors import safe_open
        try:
            with safe_open(str(f), framework="pt") as st:
                st.keys()
        except Exception as e:  # noqa: BLE001 - safetensors raises its own (Rust) error type for a bad header
            raise bad(f, str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    for f in sorted([*ckpt.glob("*.pt"), *ckpt.glob("*.pth"), *ckpt.glob("*.bin")]):
        try:
            with zipfile.ZipFile(f) as z:
                z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise bad(f, f"not a complete torch file: {e}") from None


def prepare_output(output: Path, stage: str, cfg_hash: str, overwrite: bool, resume: bool) -> Path | None:
    """Check/refresh the output directory; return the checkpoint to resume from (or None).

    Raises GramrError for: a file in the way, a finished output without --overwrite, an unfinished one with
    checkpoints without --resume, a different config on --resume, or a foreign non-empty directory."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise GramrError(f"{output}: output exists and is not a directory")
    if overwrite and output.exists():
        outguard.clear(output)     # (`train` holds the output's lock: it stays)
    man = output / "manifest.json"
    ckpt = latest_checkpoint(output)
    if man.exists():
        old = outdir.read_manifest(man)
        if old.get("done"):
            raise GramrError(f"{output}: holds a finished '{old.get('stage')}' model",
                             hint="use --overwrite to train again, or choose another -o")
        if resume and (old.get("stage") != stage or old.get("config_hash") != cfg_hash):
            raise GramrError(f"{output}: its unfinished run used a different stage/config "
                             f"({old.get('stage')}, hash {old.get('config_hash')} != {cfg_hash})",
                             hint="resume with the same recipe and --set values, or use --overwrite")
        if ckpt is not None and not resume:
            raise GramrError(f"{output}: holds an unfinished run with {ckpt.name}",
                             hint="add --resume to continue it, or --overwrite to start again")
    elif output.exists() and outguard.entries(output):
        raise GramrError(f"{output}: directory exists, is not empty and has no manifest.json",
                         hint="use --overwrite to replace it, or choose another -o")
    output.mkdir(parents=True, exist_ok=True)
    return ckpt if resume else None


def write_manifest(output: Path, stage: str, cfg_hash: str, inputs: list, done: bool,
                   counts: dict | None = None, skipped: dict | None = None) -> None:
    man = {"stage": stage, "kind": "model", "config_hash": cfg_hash, "inputs": [str(i) for i in inputs],
           "counts": counts or {}, "skipped": skipped or {}, "done": done, "gramr2_version": __version__}
    outdir.write_json(Path(output) / "manifest.json", man)


def precision_flags(precision: str, on_gpu: bool) -> dict:
    """TrainingArguments mixed-precision flags. Raises GramrError for an unknown name."""
    if precision not in PRECISIONS:
        raise GramrError(f"train.precision: unknown {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "auto":
        return {"bf16": hardware.auto_bf16(on_gpu)}
    return {"bf16": precision == "bf16"}   # bf16 on CPU = torch.autocast("cpu", bfloat16), fp32 master weights


def _load_model(path: str, tcfg: TrainConfig):
    import torch
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except OSError as e:
        raise GramrError(f"{path}: cannot load model ({str(e).splitlines()[0]})") from None
    if tcfg.lora.enabled:
        from peft import LoraConfig, get_peft_model
        lc = tcfg.lora
        model = get_peft_model(model, LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                                                 target_modules=list(lc.target_modules), task_type="CAUSAL_LM"))
    elif tcfg.trainable_layers:
        freeze_below(model, tcfg.trainable_layers)
    return model


def freeze_below(model, top: int) -> None:
    """Train only the top `top` transformer blocks and the final norm (`train.trainable_layers`, ours): every
    other weight, embeddings and a tied LM head included, gets requires_grad False. Raises GramrError when the
    model has no `model.layers` list (a decoder-only HF causal LM has one) or fewer blocks than asked."""
    blocks = getattr(getattr(model, "model", None), "layers", None)
    if blocks is None:
        raise GramrError(f"train.trainable_layers: {type(model).__name__} has no model.layers to choose from")
    if top > len(blocks):
        raise GramrError(f"train.trainable_layers: {top} asked, the model has {len(blocks)} blocks")
    for p in model.parameters():
        p.requires_grad_(False)
    for module in [*blocks[len(blocks) - top:], getattr(model.model, "norm", None)]:
        if module is not None:
            for p in module.parameters():
                p.requires_grad_(True)


def _trainer_classes():
    """Trainer subclass (label loss) and callbacks, built lazily so importing gramr2 does not import torch."""
    from transformers import Trainer, TrainerCallback
    from transformers.trainer_callback import ProgressCallback

    class GramrTrainer(Trainer):
        """The loss on target positions only (`packing.target_loss`), for packed and padded batches alike."""
        label_ids: tuple[int, int] | None = None
        eps: float = 0.0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, out = packing.target_loss(model, inputs, num_items_in_batch, self.label_ids, self.eps)
            scaled = self.label_ids is None and num_items_in_batch is not None
            if scaled and self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes   # as Trainer.compute_loss does: DDP averages grads
            return (loss, out) if return_outputs else loss

    class Progress(ProgressCallback):
        """The Trainer's tqdm bar (stderr), with the loss as a postfix instead of dicts printed to stdout."""
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and self.training_bar is not None and logs and "loss" in logs:
                self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}")

    class SlowDown(TrainerCallback):
        """Test hook: GRAMR2_DEBUG_STEP_SECONDS sleeps after each step so a kill can land mid-run."""
        def __init__(self, seconds: float):
            self.seconds = seconds

        def on_step_end(self, args, state, control, **kwargs):
            time.sleep(self.seconds)

    return GramrTrainer, Progress, SlowDown


def train(cfg: Config, inputs: list, output: Path, *, stage: str, overwrite: bool = False,
          resume: bool = False, callbacks: list | None = None) -> shards.Summary:
    """Train `cfg.model` (or `cfg.train.init`) on `inputs` with `cfg.train.objective`; write the model to `output`.

    `callbacks` are extra `transformers.TrainerCallback`s (library users: logging, early stop, inspection).
    The steps, in order: `_setup` (output dir, checkpoint, config), `_build_rows` (examples, once), `_make_trainer`
    (HF Trainer + `_training_args`), `trainer.train`, `_save`, `_metrics`, `_write_outputs`.

    Returns the stage Summary. Raises GramrError for bad inputs/config, an existing output (see
    `prepare_output`), or no usable example."""
    output = Path(output)
    if not is_main_process():
        return _train(cfg, inputs, output, stage, overwrite, resume, callbacks)
    # rank 0 writes: never over an input (the data, or the weights it starts from), and one writer at a time
    starts = [p for p in (cfg.model, cfg.train.init) if p and Path(p).exists()]
    outguard.check_not_input(output, [*inputs, *starts])
    if output.exists() and not output.is_dir():
        raise GramrError(f"{output}: output exists and is not a directory")
    created = not output.exists()
    try:
        with outguard.lock(output):
            return _train(cfg, inputs, output, stage, overwrite, resume, callbacks)
    finally:
        if created and output.is_dir() and not any(output.iterdir()):
            output.rmdir()         # a run refused before it wrote anything leaves no directory behind


def _train(cfg: Config, inputs: list, output: Path, stage: str, overwrite: bool, resume: bool,
           callbacks: list | None) -> shards.Summary:
    from transformers import set_seed

    t0 = time.time()
    run = _setup(cfg, output, stage, overwrite, resume)
    if run.main:
        outdir.atomic_write(output / "config.yaml", yaml.safe_dump(run.resolved, sort_keys=False, allow_unicode=True))
        write_manifest(output, stage, run.cfg_hash, inputs, done=False)
    tok = models.load_tokenizer(run.init if Path(run.init, "tokenizer_config.json").exists() else run.base)
    rows, skipped, notes, n_in = _build_rows(cfg, inputs, tok)

    set_seed(cfg.seed)
    model = _load_model(run.init, cfg.train)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    trainer = _make_trainer(cfg, model, tok, rows, _training_args(cfg, output, run, world), callbacks)
    gflops = hardware.matmul_gflops(run.precision_args["bf16"]) if run.main else None
    result = trainer.train(resume_from_checkpoint=str(run.ckpt) if run.ckpt else None)
    merged = _save(trainer, tok, output, cfg.train)
    metrics, curve = _metrics(cfg.train, trainer.state, model, run, t0, result.metrics.get("train_runtime"),
                              gflops, merged, world)
    counts = {"records": n_in, "examples": len(rows), **{f"kept:{k}": v for k, v in notes.items()}}
    summary = shards.Summary(stage, counts, dict(skipped), time.time() - t0, [str(output)], metrics)
    if run.main:
        outdir.write_json(output / "training_summary.json",
                          {**metrics, "loss_curve": curve, "examples_used": len(rows),
                           "examples_skipped": dict(skipped), "notes": dict(notes)})
        if not cfg.train.keep_checkpoints:
            shutil.rmtree(output / CKPT_DIR, ignore_errors=True)
        outdir.write_json(output / "summary.json", summary.to_dict())
        write_manifest(output, stage, run.cfg_hash, inputs, done=True, counts=counts, skipped=dict(skipped))
    return summary


@dataclass
class _Run:
    """What `_setup` decides before any data or model is loaded (ours: a bundle, not a concept)."""
    resolved: dict        # the config sections the output's hash covers (SECTIONS)
    cfg_hash: str
    main: bool            # rank 0 (the only writer)
    on_gpu: bool
    precision_args: dict  # precision_flags(...): bf16/fp16 TrainingArguments (not `flags.py`'s text flags)
    ckpt: Path | None     # the checkpoint to resume from
    base: str             # the resolved cfg.model
    init: str             # the weights training starts from


def _setup(cfg: Config, output: Path, stage: str, overwrite: bool, resume: bool) -> _Run:
    """Validate `cfg.train`, pick precision, prepare `output` (rank 0) and find the checkpoint to resume from."""
    import torch

    tcfg = cfg.train
    config.ensure(tcfg, "train.")
    resolved = config.sections(cfg, *SECTIONS)
    cfg_hash = shards.config_hash(resolved)
    main = is_main_process()
    on_gpu = torch.cuda.is_available()
    flags = precision_flags(tcfg.precision, on_gpu)
    if not on_gpu:
        import numpy as np
        np.finfo(np.float32), np.finfo(np.float64)   # cache numpy's limits first: it warns if it sees FTZ
        torch.set_flush_denormal(True)   # denormals make CPU steps several times slower late in training
    ckpt = prepare_output(output, stage, cfg_hash, overwrite, resume) if main else latest_checkpoint(output)
    if not main:
        ckpt = ckpt if resume else None
    if ckpt is not None:
        check_checkpoint(ckpt)
    base = models.resolve(cfg.model)
    init = base if tcfg.init in ("backbone", "continue") else models.resolve(tcfg.init)
    return _Run(resolved, cfg_hash, main, on_gpu, flags, ckpt, base, init)


def _build_rows(cfg: Config, inputs: list, tok) -> tuple[list, Counter, Counter, int]:
    """Read `inputs` and build the objective's examples (masks included). Returns (rows, skipped by reason,
    objective notes, records in). Raises GramrError when no example is usable."""
    tcfg = cfg.train
    read_skips: Counter = Counter()
    recs = readers.read(inputs, skipped=read_skips)   # unlabeled records: the objective skips them (no_label)
    rows, skipped, notes = objectives.build_dataset(tok, recs, tcfg.objective, tcfg.max_length, cfg.prompt)
    skipped.update(read_skips)
    n_in = len(rows) + sum(v for k, v in skipped.items() if k != "duplicate_id")
    if not rows:
        raise GramrError(f"no usable training example in {', '.join(map(str, inputs))} "
                         f"(skipped: {dict(skipped) or 'none'})",
                         hint="raise train.max_length, or check labels/rationales for this objective")
    return rows, skipped, notes, n_in


def _training_args(cfg: Config, output: Path, run: _Run, world: int):
    """The HF `TrainingArguments` for `cfg.train` (cosine schedule, checkpoints under `output/checkpoints`)."""
    from transformers import TrainingArguments

    tcfg = cfg.train
    return TrainingArguments(
        output_dir=str(output / CKPT_DIR), seed=cfg.seed, data_seed=cfg.seed,
        learning_rate=tcfg.lr, max_steps=tcfg.max_steps, num_train_epochs=tcfg.epochs,
        per_device_train_batch_size=tcfg.batch_size, gradient_accumulation_steps=tcfg.grad_accum,
        lr_scheduler_type="cosine", warmup_steps=tcfg.warmup_ratio,   # a float < 1 is a ratio of total steps
        weight_decay=tcfg.weight_decay, logging_steps=tcfg.logging_steps, logging_first_step=True,
        save_strategy="steps", save_steps=tcfg.save_steps, save_total_limit=tcfg.save_total_limit,
        use_cpu=not run.on_gpu, ddp_backend=None if run.on_gpu or world == 1 else "gloo",
        report_to="none", dataloader_num_workers=0, remove_unused_columns=False,
        include_num_input_tokens_seen="all" if tcfg.packing else "non_padding", **run.precision_args)


def _make_trainer(cfg: Config, model, tok, rows: list, args, callbacks: list | None):
    """The Trainer with our collator, the label objective's answer tokens and ε, and the callbacks."""
    from transformers.trainer_callback import ProgressCallback

    tcfg = cfg.train
    GramrTrainer, Progress, SlowDown = _trainer_classes()
    collator = packing.PackedCollator() if tcfg.packing else objectives.Collator(tok.pad_token_id)
    trainer = GramrTrainer(model=model, args=args, train_dataset=rows, processing_class=tok,
                           data_collator=collator)
    if tcfg.objective == "label":
        trainer.label_ids = objectives.answer_token_ids(tok)
        trainer.eps = tcfg.label_smoothing
        trainer.loss_is_scaled_for_ga = False   # a per-micro-batch mean: the Trainer divides by grad_accum
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(Progress())
    for cb in callbacks or []:
        trainer.add_callback(cb)
    if os.environ.get("GRAMR2_DEBUG_STEP_SECONDS"):
        trainer.add_callback(SlowDown(float(os.environ["GRAMR2_DEBUG_STEP_SECONDS"])))
    return trainer


def _metrics(tcfg: TrainConfig, state, model, run: _Run, t0: float, train_runtime: float | None,
             gflops: float | None, merged: bool, world: int) -> tuple[dict, list]:
    """The run's metrics (loss, non-padding tokens/s vs the matmul roofline, minutes) and its loss curve."""
    curve = [[h["step"], round(h["loss"], 6)] for h in state.log_history if "loss" in h]
    runtime = train_runtime or (time.time() - t0)
    tokens = int(state.num_input_tokens_seen)
    tps = tokens / runtime if runtime else None
    roof = gflops * 1e9 / hardware.train_flops_per_token(model) if gflops else None
    metrics = {
        "objective": tcfg.objective, "steps": state.global_step, "epochs": round(state.epoch or 0.0, 4),
        "first_loss": curve[0][1] if curve else None, "final_loss": curve[-1][1] if curve else None,
        "tokens_seen": tokens, "tokens_per_second": round(tps, 2) if tps else None,   # non-padding tokens
        "packing": tcfg.packing, "matmul_gflops": round(gflops, 1) if gflops else None,
        "roofline_tokens_per_second": round(roof, 1) if roof else None,
        "roofline_fraction": round(tps / roof, 3) if tps and roof else None,
        "minutes": round((time.time() - t0) / 60, 3), "precision": "bf16" if run.precision_args["bf16"] else "fp32",
        "lora": tcfg.lora.enabled, "merged_lora": merged, "world_size": world,
        "trainable_layers": tcfg.trainable_layers or "all",
        "resumed_from": run.ckpt.name if run.ckpt else None,
    }
    return metrics, curve


def _save(trainer, tok, output: Path, tcfg: TrainConfig) -> bool:
    """Write the final model into `output`: full weights, the LoRA adapter, or (merge_lora) the merged plain model
    plus the adapter in `output/adapter/`. Returns whether a merge happened."""
    if not tcfg.lora.enabled:
        trainer.save_model(str(output))     # rank 0 only; gathers FSDP/DeepSpeed shards
        return False
    if not tcfg.merge_lora:
        trainer.save_model(str(output))     # adapter_config.json + adapter_model.safetensors
        return False
    trainer.save_model(str(output / "adapter"))
    if trainer.is_world_process_zero():
        model = trainer.accelerator.unwrap_model(trainer.model)
        plain = model.merge_and_unload()
        plain.save_pretrained(str(output))
        tok.save_pretrained(str(output))
    return True
