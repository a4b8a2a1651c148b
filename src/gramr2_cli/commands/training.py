"""Training commands: prover-train, pretrain, finetune, adapt (one trainer core, DESIGN §5)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..recipe import load_recipe
from .common import ConfigOpt, InputsArg, ModelOpt, OutputOpt, OverwriteOpt, SeedOpt, SetOpt, command, show

ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an unfinished run from its latest "
                                                          "checkpoint (same recipe and --set values).")]
MergeOpt = Annotated[bool | None, typer.Option("--merge-lora/--no-merge-lora",
                                               help="With LoRA: write a plain merged model (adapter kept in "
                                                    "<output>/adapter/).")]
StepsOpt = Annotated[int | None, typer.Option("--max-steps", help="Stop after this many optimizer steps "
                                                                 "(= -s train.max_steps=N).")]
ObjectiveOpt = Annotated[str | None, typer.Option("--objective", help="reasoning (Eq. 2), label (GenRM / GRAM v1) "
                                                                      "or pairgen (GRAM v1 pretraining).")]
InitOpt = Annotated[str | None, typer.Option("--init", help="Weights to start from: 'backbone' (= --model) or a "
                                                            "model directory.")]


def _lora_opt(default: bool):
    note = " (the default here; --no-lora trains all weights)." if default else "."
    return Annotated[bool | None, typer.Option("--lora/--no-lora", help="Train LoRA adapters" + note)]


def _run(stage: str, inputs: list[Path], output: Path, *, recipe, override, seed, model, overwrite: bool,
         resume: bool, merge_lora, lora, max_steps, objective=None, init=None) -> None:
    from ..stages import training
    cfg = load_recipe(recipe, override, model=model, seed=seed, train__merge_lora=merge_lora,
                      train__lora__enabled=lora, train__max_steps=max_steps, train__objective=objective,
                      train__init=init)
    show(training.run(cfg, inputs, output, stage=stage, overwrite=overwrite, resume=resume))


def register(app: typer.Typer) -> None:
    @command(app, "prover-train", epilog="Example: gramr2 prover-train out/synth/labeled -o out/prover "
                                         "-c recipes/prover-train.yaml -s train.max_steps=40")
    def prover_train_cmd(inputs: InputsArg, output: OutputOpt, recipe: ConfigOpt = None, override: SetOpt = None,
                         seed: SeedOpt = None, model: ModelOpt = None, overwrite: OverwriteOpt = False,
                         resume: ResumeOpt = False, merge_lora: MergeOpt = None,
                         lora: _lora_opt(False) = None, max_steps: StepsOpt = None) -> None:
        """Train the preference-proving model π_ψ on labeled pairs with rationales (Eq. 4)."""
        _run("prover-train", inputs, output, recipe=recipe, override=override, seed=seed, model=model,
             overwrite=overwrite, resume=resume, merge_lora=merge_lora, lora=lora, max_steps=max_steps)

    @command(app, "pretrain", epilog="Example: gramr2 pretrain out/proved -o out/rm -c recipes/pretrain.yaml "
                                     "--objective reasoning")
    def pretrain_cmd(inputs: InputsArg, output: OutputOpt, recipe: ConfigOpt = None, override: SetOpt = None,
                     seed: SeedOpt = None, model: ModelOpt = None, overwrite: OverwriteOpt = False,
                     resume: ResumeOpt = False, merge_lora: MergeOpt = None, lora: _lora_opt(False) = None,
                     max_steps: StepsOpt = None, objective: ObjectiveOpt = None, init: InitOpt = None) -> None:
        """Train the reward model (initial GRAM-R², Eq. 2; or the label / pairgen baselines)."""
        _run("pretrain", inputs, output, recipe=recipe, override=override, seed=seed, model=model,
             overwrite=overwrite, resume=resume, merge_lora=merge_lora, lora=lora, max_steps=max_steps,
             objective=objective, init=init)

    @command(app, "finetune", epilog="Example: gramr2 finetune data/helpsteer3 --model out/rm -o out/rm-ft "
                                     "-c recipes/finetune.yaml")
    def finetune_cmd(inputs: InputsArg, output: OutputOpt, recipe: ConfigOpt = None, override: SetOpt = None,
                     seed: SeedOpt = None, model: ModelOpt = None, overwrite: OverwriteOpt = False,
                     resume: ResumeOpt = False, merge_lora: MergeOpt = None, lora: _lora_opt(False) = None,
                     max_steps: StepsOpt = None, objective: ObjectiveOpt = None) -> None:
        """Fine-tune a reward model on human-written rationales (HelpSteer3-style)."""
        _run("finetune", inputs, output, recipe=recipe, override=override, seed=seed, model=model,
             overwrite=overwrite, resume=resume, merge_lora=merge_lora, lora=lora, max_steps=max_steps,
             objective=objective)

    @command(app, "adapt", epilog="Example: gramr2 adapt data/task --model out/rm-ft -o out/rm-task "
                                  "-c recipes/adapt.yaml --merge-lora")
    def adapt_cmd(inputs: InputsArg, output: OutputOpt, recipe: ConfigOpt = None, override: SetOpt = None,
                  seed: SeedOpt = None, model: ModelOpt = None, overwrite: OverwriteOpt = False,
                  resume: ResumeOpt = False, merge_lora: MergeOpt = None, lora: _lora_opt(True) = True,
                  max_steps: StepsOpt = None, objective: ObjectiveOpt = None) -> None:
        """Adapt a reward model to a task with little data (LoRA by default; --no-lora for all weights).

        The adapter is merged into a plain model by default (the adapter itself is kept in OUTPUT/adapter/), so
        every engine loads the output; --no-merge-lora writes only the adapter, into OUTPUT itself."""
        _run("adapt", inputs, output, recipe=recipe, override=override, seed=seed, model=model,
             overwrite=overwrite, resume=resume, merge_lora=True if merge_lora is None else merge_lora, lora=lora,
             max_steps=max_steps, objective=objective)
