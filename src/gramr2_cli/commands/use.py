"""Using a reward model: rank (pairs, list), evaluate, probe, serve. Thin wrappers over `stages.rank_pairs`,
`stages.rank_list`, `stages.evaluate`, `stages.probe` and `serve`."""

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
    show,
)

rank_app = typer.Typer(help="Pairwise verdicts (voting@k, both orders) and listwise best-of-n.",
                       no_args_is_help=True)

VotesOpt = Annotated[int | None, typer.Option("--votes", "-k", help="voting@k: samples per order (k > 1 samples "
                                                                       "at generate.temperature; ties go to the "
                                                                       "higher mean P(A better)).")]
OrdersOpt = Annotated[str | None, typer.Option("--orders", help="ab, or both (also judge with the responses "
                                                                   "swapped and combine).")]
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="Do not draw a progress bar.")]


@command(rank_app, "pairs", epilog="Example: gramr2 rank pairs data/pairs.jsonl --model out/rm -o out/verdicts "
                                   "--votes 4 --orders both")
def rank_pairs_cmd(inputs: InputsArg, output: OutputOpt, model: ModelOpt = None, votes: VotesOpt = None,
                   orders: OrdersOpt = None, recipe: ConfigOpt = None, override: SetOpt = None,
                   seed: SeedOpt = None, engine: EngineOpt = None, overwrite: OverwriteOpt = False,
                   shard_index: ShardIndexOpt = None, num_shards: NumShardsOpt = None,
                   no_progress: NoProgressOpt = False) -> None:
    """A verdict and P(A better) per pair, written to meta.judgment; voting@k; both presentation orders.

    The summary reports the parse rate, ties, how often the two orders disagree (--orders both) and, when
    the pairs carry gold labels, accuracy. Rerunning on the same -o resumes."""
    from ..stages import rank_pairs
    cfg = load_recipe(recipe, override, model=model, rank__votes=votes, rank__orders=orders, seed=seed,
                generate__engine=engine)
    show(rank_pairs.run(cfg, inputs, output, overwrite=overwrite, shard_index=shard_index, num_shards=num_shards,
                        progress=not no_progress))


@command(rank_app, "list", epilog="Example: gramr2 rank list data/candidates.jsonl --model out/rm -o out/best "
                                  "--method knockout --orders both")
def rank_list_cmd(inputs: InputsArg, output: OutputOpt, model: ModelOpt = None,
                  method: Annotated[str | None, typer.Option("--method", help="knockout (the paper's linear "
                                                                "search, n−1 comparisons), full (the paper's "
                                                                "complete ranking: repeated knockout over the "
                                                                "rest), tournament (⌈log2 n⌉ rounds), mergesort "
                                                                "(complete ranking, ≤ n⌈log2 n⌉), round_robin "
                                                                "(all pairs).")] = None,
                  votes: VotesOpt = None, orders: OrdersOpt = None, recipe: ConfigOpt = None,
                  override: SetOpt = None, seed: SeedOpt = None, engine: EngineOpt = None,
                  overwrite: OverwriteOpt = False, shard_index: ShardIndexOpt = None,
                  num_shards: NumShardsOpt = None, no_progress: NoProgressOpt = False) -> None:
    """Best-of-n over each record's candidates ({"prompt": ..., "candidates": [...]}).

    Writes meta.rank: winner (index), ranking, every comparison with its P(first better), and the number of
    judge calls. The same step of every record in a batch goes to the engine in one call."""
    from ..stages import rank_list
    cfg = load_recipe(recipe, override, model=model, rank__method=method, rank__votes=votes, rank__orders=orders,
                seed=seed, generate__engine=engine)
    show(rank_list.run(cfg, inputs, output, overwrite=overwrite, shard_index=shard_index, num_shards=num_shards,
                       progress=not no_progress))


def register(app: typer.Typer) -> None:
    """Add rank, evaluate, probe and serve to `app`. Long because Typer declares each command-line option as a
    function parameter; the work is in `stages` and `serve`."""
    app.add_typer(rank_app, name="rank")

    @command(app, "evaluate", epilog="Example: gramr2 evaluate rewardbench/ rmbench/ --model out/rm "
                                     "--model embedded:smollm2-135m -o report/ --orders both")
    def evaluate_cmd(inputs: InputsArg, output: OutputOpt,
                     model: Annotated[list[str] | None, typer.Option(
                         "--model", "-m", help="Model to evaluate; repeat for several side by side "
                                               "(default: the recipe's model).")] = None,
                     votes: VotesOpt = None, orders: OrdersOpt = None, recipe: ConfigOpt = None,
                     override: SetOpt = None, seed: SeedOpt = None, engine: EngineOpt = None,
                     overwrite: OverwriteOpt = False, no_progress: NoProgressOpt = False) -> None:
        """Accuracy overall, per dataset and per category on gold-labeled pairs; JudgeBench's position-consistent
        accuracy and category mean; RM-Bench's domain mean and easy/normal/hard; parse rate; order consistency
        (--orders both); several models side by side. RewardBench 2 rows (chosen/rejected lists) are judged as
        best-of-n lists (-s evaluate.list_method=round_robin|knockout) and scored by its official rules.

        Writes OUTPUT/report.md, report.json, accuracy.png and predictions/<model>/ (resumable per model)."""
        from ..stages import evaluate
        cfg = load_recipe(recipe, override, evaluate__votes=votes, evaluate__orders=orders, seed=seed,
                    generate__engine=engine)
        show(evaluate.run(cfg, inputs, output, models=model or [cfg.model], overwrite=overwrite,
                          progress=not no_progress))

    @command(app, "probe", epilog="Example: gramr2 probe data/test --model out/rm --model out/rm-augmented "
                                  "-o probe/ -s probe.max_pairs=16")
    def probe_cmd(inputs: InputsArg, output: OutputOpt,
                  model: Annotated[list[str] | None, typer.Option(
                      "--model", "-m", help="Model to probe; repeat for several side by side "
                                            "(default: the recipe's model).")] = None,
                  families: Annotated[str | None, typer.Option(
                      "--families", help="Comma-separated: master_key, verdict_injection, length, position "
                                         "(default: all).")] = None,
                  max_pairs: Annotated[int | None, typer.Option(
                      "--max-pairs", help="Probe a seeded sample of this many source pairs (0 = all).")] = None,
                  baseline: Annotated[Path | None, typer.Option(
                      "--baseline", help="An earlier probe output directory of the same probe pairs (e.g. run with "
                                         "-s prompt=gramr2-v1+raw): pair each model against its run there.")] = None,
                  votes: VotesOpt = None, recipe: ConfigOpt = None, override: SetOpt = None, seed: SeedOpt = None,
                  engine: EngineOpt = None, overwrite: OverwriteOpt = False,
                  no_progress: NoProgressOpt = False) -> None:
        """How easily a reward model is fooled, on probe pairs built from gold-labeled pairs: content-free
        master keys, verdict injection, position bias (both orders) and length bias (padded wrong answers).

        Every rate with its count and a 95% Wilson interval in OUTPUT/report.md, report.json, probe.png; models
        paired against the first (and against --baseline) with an exact sign test; predictions/<model>/ is
        resumable per model."""
        from ..stages import probe
        fams = [f.strip() for f in families.split(",") if f.strip()] if families else None
        cfg = load_recipe(recipe, override, probe__families=fams, probe__max_pairs=max_pairs, probe__votes=votes,
                          seed=seed, generate__engine=engine)
        show(probe.run(cfg, inputs, output, models=model or [cfg.model], overwrite=overwrite,
                       progress=not no_progress, baseline=baseline))

    @command(app, "serve", epilog="Example: gramr2 serve --model out/rm --port 8000 --orders both  "
                                  "(then: curl -s localhost:8000/health)")
    def serve_cmd(model: ModelOpt = None,
                  host: Annotated[str | None, typer.Option("--host", help="Bind address (default 127.0.0.1; "
                                                              "0.0.0.0 exposes the server to the network).")
                                  ] = None,
                  port: Annotated[int | None, typer.Option("--port", help="TCP port (default 8000).")] = None,
                  votes: VotesOpt = None, orders: OrdersOpt = None,
                  max_batch: Annotated[int | None, typer.Option("--max-batch", help="Most judge pairs per "
                                                                   "engine call (micro-batching).")] = None,
                  api_key: Annotated[str | None, typer.Option("--api-key", help="Require 'Authorization: Bearer "
                                                              "KEY' on every request (default: $GRAMR2_API_KEY). "
                                                              "Required for a host other than loopback.")] = None,
                  recipe: ConfigOpt = None, override: SetOpt = None, seed: SeedOpt = None,
                  engine: EngineOpt = None) -> None:
        """HTTP reward server for RLHF: POST /score, /compare, /get_reward (OpenRLHF), GET /health.

        Reward of a response = P(it beats the reference response), averaged over both presentation orders
        (GRAM v1's RLHF scheme; GRAM-R² specifies none), or a group reward over a prompt's rollouts
        (-s serve.pairing=round_robin).
        A failed judgment is masked (null), never 0.5. Requests from concurrent clients are micro-batched into
        one engine call. Limits: serve.max_prompt_tokens (413), serve.request_timeout (504); SIGTERM finishes
        requests in flight."""
        from ..server import serve
        cfg = load_recipe(recipe, override, model=model, serve__host=host, serve__port=port, serve__votes=votes,
                    serve__orders=orders, serve__max_batch=max_batch, seed=seed, generate__engine=engine)
        serve.serve(cfg, api_key=api_key)

