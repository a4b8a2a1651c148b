"""Self-training data path: prove, self-label, filter, self-train (thin wrappers over `stages.*.run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..recipe import load_recipe
from .common import (
    ConfigOpt,
    EngineOpt,
    InputsArg,
    ModelOpt,
    NumShardsOpt,
    OutputOpt,
    OverwriteOpt,
    SeedOpt,
    SetOpt,
    ShardIndexOpt,
    command,
    err_console,
    show,
)

NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="Do not draw a progress bar.")]


def register(app: typer.Typer) -> None:
    """Add prove, self-label, filter and self-train to `app`. Long because Typer declares each command-line
    option as a function parameter; the work is in `stages`."""
    @command(app, "prove", epilog="Example: gramr2 prove out/labeled --prover out/prover -o out/proved "
                                  "-k 4 --keep-candidates")
    def prove_cmd(inputs: InputsArg, output: OutputOpt,
                  prover: Annotated[str | None, typer.Option("--prover", help="The prover model π_ψ "
                                                                "(a 'gramr2 prover-train' output).")] = None,
                  k: Annotated[int | None, typer.Option("-k", "--k", help="Proofs sampled per pair.")] = None,
                  keep_candidates: Annotated[bool | None, typer.Option(
                      "--keep-candidates/--best-only", help="Keep all k proofs and their Eq. 5 scores in "
                                                            "meta.proof.candidates.")] = None,
                  recipe: ConfigOpt = None, override: SetOpt = None, seed: SeedOpt = None,
                  engine: EngineOpt = None, overwrite: OverwriteOpt = False, shard_index: ShardIndexOpt = None,
                  num_shards: NumShardsOpt = None, no_progress: NoProgressOpt = False) -> None:
        """Sample k proofs per labeled pair, keep the best by Eq. 5, reform it into the record's rationale.

        Eq. 5: proof_score = −log π(z|s,l) / log π(z), log π(z) scored under an empty context; higher is better.
        Pairs without a label or a usable proof go to OUTPUT/skipped/ with the reason."""
        from ..stages import prove
        cfg = load_recipe(recipe, override, prove__prover=prover, prove__k=k,
                          prove__keep_candidates=keep_candidates, seed=seed, generate__engine=engine)
        show(prove.run(cfg, inputs, output, overwrite=overwrite, shard_index=shard_index, num_shards=num_shards,
                       progress=not no_progress))

    @command(app, "self-label", epilog="Example: gramr2 self-label out/unlabeled --model out/rm -o out/labeled "
                                       "--samples 4 --orders both")
    def self_label_cmd(inputs: InputsArg, output: OutputOpt, model: ModelOpt = None,
                       samples: Annotated[int | None, typer.Option("--samples", help="Votes per order (m).")
                                          ] = None,
                       orders: Annotated[str | None, typer.Option("--orders", help="ab, or both (also judge "
                                                                     "with the responses swapped).")] = None,
                       recipe: ConfigOpt = None, override: SetOpt = None, seed: SeedOpt = None,
                       engine: EngineOpt = None, overwrite: OverwriteOpt = False,
                       shard_index: ShardIndexOpt = None, num_shards: NumShardsOpt = None,
                       no_progress: NoProgressOpt = False) -> None:
        """Judge unlabeled pairs with the reward model: votes, majority pseudo-label, confidence, P(A).

        A tie or no parseable verdict leaves the label null (meta.judgment.reason); an input label moves to
        meta.gold_label so 'gramr2 filter' can report pseudo-label precision."""
        from ..stages import self_label
        cfg = load_recipe(recipe, override, model=model, self_label__samples=samples, self_label__orders=orders,
                          seed=seed, generate__engine=engine)
        show(self_label.run(cfg, inputs, output, overwrite=overwrite, shard_index=shard_index,
                            num_shards=num_shards, progress=not no_progress))

    @command(app, "filter", epilog="Example: gramr2 filter out/proved -o out/kept -c recipes/filter.yaml "
                                   "-s filter.min_agreement=1.0")
    def filter_cmd(inputs: InputsArg, output: OutputOpt, recipe: ConfigOpt = None, override: SetOpt = None,
                   seed: SeedOpt = None, overwrite: OverwriteOpt = False, shard_index: ShardIndexOpt = None,
                   num_shards: NumShardsOpt = None) -> None:
        """Keep confident, consistent self-labelled pairs; write the rest to OUTPUT/rejected/ with reasons.

        Rules: no_label, agreement, confidence, order_consistency, no_rationale, too_long,
        label_not_in_conclusion, broken_structure; then optional A/B balancing. With gold labels in
        meta.gold_label the report gives pseudo-label precision before and after."""
        from ..stages import filter as filter_stage
        cfg = load_recipe(recipe, override, seed=seed)
        show(filter_stage.run(cfg, inputs, output, overwrite=overwrite, shard_index=shard_index,
                              num_shards=num_shards))

    @command(app, "self-train", epilog="Example: gramr2 self-train -c recipes/self-train.yaml -o runs/self-train "
                                       "-s self_train.iterations=2")
    def self_train_cmd(output: OutputOpt,
                       unlabeled: Annotated[list[Path] | None, typer.Argument(
                           help="Unlabeled pairs: one source split into `iterations` batches, or one per "
                                "iteration (default: self_train.unlabeled).")] = None,
                       recipe: ConfigOpt = None, override: SetOpt = None, seed: SeedOpt = None,
                       engine: EngineOpt = None, no_progress: NoProgressOpt = False) -> None:
        """Run the self-training loop from one recipe: per iteration self-label (current RM) → prove →
        filter → merge with the earlier training data → pretrain. Finished steps (manifest done) are skipped,
        so rerunning resumes."""
        from ..stages import self_train
        direct = {"self_train__unlabeled": [str(u) for u in unlabeled]} if unlabeled else {}
        cfg = load_recipe(recipe, override, seed=seed, generate__engine=engine, **direct)
        show(self_train.run(cfg, output, progress=not no_progress,
                            log=lambda m: err_console.print(f"[bold]self-train:[/] {m}", highlight=False)))
