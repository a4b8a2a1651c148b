"""`gramr2 plan`: a dry run of a recipe on its data (the library is `gramr2_cli.stages.plan`); a table on stderr,
`--json` on stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..recipe import load_recipe
from .common import ModelOpt, SetOpt, command, err_console


def _gib(x: float) -> str:
    return f"{x:,.1f} GiB"


def _training_rows(t: Table, tr: dict, prefix: str = "") -> None:
    skipped = ", ".join(f"{k} {v:,}" for k, v in tr["skipped"].items()) or "none"
    mem = tr["memory"]
    rows = [("examples used / records", f"{tr['used']:,} / {tr['records']:,}"), ("skipped", skipped),
            ("tokens per epoch (mean, max)", f"{tr['tokens_per_epoch']:,} ({tr['mean_example_tokens']:g}, "
                                             f"{tr['max_example_tokens']:,})"),
            ("global batch", f"{tr['global_batch']:,}"),
            ("optimizer steps (per epoch)", f"{tr['steps']:,} ({tr['steps_per_epoch']:,}), {tr['epochs']:g} epoch(s)"),
            ("tokens processed", f"{tr['tokens']:,}" + ("" if tr["tokens_exact"] else " (partial epoch: estimate)")),
            ("trainable parameters", f"{tr['trainable_params']:,}"),
            (f"training FLOPs ({tr['flops_per_token_factor']}·N·tokens)", f"{tr['flops']:.3e}"),
            ("GPU-hours (wall hours)", f"{tr['gpu_hours']:,.3g} ({tr['wall_hours']:,.3g})"),
            ("per-GPU weights + grads + optimizer", f"{_gib(mem['weights_gib'])} + {_gib(mem['gradients_gib'])} + "
                                                    f"{_gib(mem['optimizer_gib'])} = {_gib(mem['total_gib'])}")]
    for k, v in rows:
        t.add_row(escape(prefix + k), escape(v))


def _gen_rows(t: Table, g: dict, prefix: str = "") -> None:
    v = (f"{g['prompts']:,} prompts × {g['samples_per_prompt']} = {g['samples']:,} samples; prompt tokens "
         f"{g['prompt_tokens']:,}; generated ≤ {g['max_generated_tokens']:,} ({g['max_new_tokens']} each)")
    if g["scored_sequences"]:
        v += f"; {g['scored_sequences']:,} scored sequences (Eq. 5)"
    t.add_row(escape(f"{prefix}{g['stage']}"), escape(v))


def show_plan(p: dict) -> None:
    """The plan as a table on stderr."""
    m, hw = p["model"], p["hardware"]
    t = Table(title=f"plan: {p['stage']} ({p['recipe']})", show_header=False, title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row("model", escape(f"{m['spec']}: {m['params']:,} parameters ({m['params_source']}); "
                              f"tokens: {m['tokens']}; context {m['context']}"))
    t.add_row("hardware", escape(f"{hw['gpus']} × {hw['gpu_name']} ({hw['bf16_tflops']:g} bf16 TFLOPs, "
                                 f"{hw['memory_gib']:g} GiB), MFU {hw['mfu']:.0%}, ZeRO {hw['zero']}"))
    if p["training"]:
        _training_rows(t, p["training"])
    for g in p["generation"]:
        _gen_rows(t, g)
    for it in p["iterations"]:
        for g in it["generation"]:
            _gen_rows(t, g, f"iter {it['iteration']}: ")
        _training_rows(t, it["training"], f"iter {it['iteration']}: ")
    if p["iterations"]:
        t.add_row("total GPU-hours (training)", f"{p['total_gpu_hours']:,.2f}")
    err_console.print(t)
    for w in p["warnings"]:
        err_console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    @command(app, "plan", epilog="Example: gramr2 plan recipes/paper/rm-8b-pretrain.yaml out/proved "
                                 "--gpus 8 --gpu h100 --zero 3")
    def plan_cmd(recipe: Annotated[Path, typer.Argument(help="Recipe YAML of the run to plan.")],
                 inputs: Annotated[Optional[list[Path]], typer.Argument(help="The records the stage will read "
                                                                             "(self-train: its unlabeled pairs; "
                                                                             "default self_train.unlabeled).")] = None,
                 stage: Annotated[Optional[str], typer.Option("--stage", help="prover-train, pretrain, finetune, "
                                                              "adapt, prove, self-label, evaluate, rank or "
                                                              "self-train (default: from the recipe's sections).")]
                 = None,
                 override: SetOpt = None, model: ModelOpt = None,
                 gpus: Annotated[int, typer.Option("--gpus", help="GPUs (data-parallel world size).")] = 8,
                 gpu: Annotated[str, typer.Option("--gpu", help="a100, a100-40gb, h100 or h200.")] = "h100",
                 mfu: Annotated[float, typer.Option("--mfu", help="Model-FLOPs utilisation assumed for "
                                                                  "GPU-hours.")] = 0.4,
                 zero: Annotated[str, typer.Option("--zero", help="ZeRO stage 0-3, or fsdp (= full "
                                                                  "sharding).")] = "3",
                 examples: Annotated[Optional[int], typer.Option("--examples", help="Plan for this many "
                                                                  "records, DATA being a sample of them.")] = None,
                 rationale_tokens: Annotated[Optional[int], typer.Option(
                     "--rationale-tokens", help="Training stages: plan pairs without a rationale as if they had "
                                                "one of this many tokens (what prove will add).")] = None,
                 as_json: Annotated[bool, typer.Option("--json", help="Also print the plan as JSON on "
                                                                      "stdout.")] = False) -> None:
        """Dry run: tokens, steps, FLOPs, GPU-hours, per-GPU memory and generation counts — no model loaded.

        Reads only the model's config.json and tokenizer (a local directory), else a known-size table and a
        characters/4 token estimate. Warns about examples over train.max_length, memory over the GPU and
        prompts longer than the context."""
        from ..stages import plan
        stage = stage or plan.infer_stage(recipe)
        cfg = load_recipe(recipe, override, model=model, prove__prover=model if stage == "prove" else None)
        p = plan.run(cfg, list(inputs or []), stage=stage, gpus=gpus, gpu=gpu, mfu=mfu,
                     zero=zero, examples=examples, recipe=str(recipe), rationale_tokens=rationale_tokens)
        show_plan(p)
        if as_json:
            typer.echo(json.dumps(p, indent=2))
