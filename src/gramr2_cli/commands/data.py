"""`gramr2 data …`: synth, import, export, stats, merge, split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..core.errors import GramrError
from ..recipe import load_recipe
from .common import (
    ConfigOpt,
    InputsArg,
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

app = typer.Typer(help="Create, import, export, inspect, merge and split record shards.", no_args_is_help=True)


@command(app, "synth", epilog="Example: gramr2 data synth --n 200 --seed 1 -o out/synth --families easy,hard")
def synth_cmd(output: OutputOpt,
              n: Annotated[Optional[int], typer.Option("--n", "-n", help="Pairs in the labeled split; the other "
                                                       "splits scale with it (synth.splits.*).")] = None,
              seed: SeedOpt = None,
              families: Annotated[Optional[str], typer.Option("--families", help="Comma-separated families or "
                                                              "groups (easy, hard, all) for labeled/unlabeled/test; "
                                                              "default: easy. A group leaves out the families "
                                                              "held out for the adapt splits.")] = None,
              recipe: ConfigOpt = None, override: SetOpt = None, overwrite: OverwriteOpt = False) -> None:
    """Generate the synthetic verifiable preference task: one shard directory per split (labeled, unlabeled,
    test, adapt, adapt_test) with gold labels and step-by-step gold rationales. Rerunning resumes."""
    import dataclasses

    from rich.table import Table

    from ..stages import synth
    cfg = load_recipe(recipe, override, seed=seed, synth__n=n, synth__families=families)
    summary = synth.run(cfg.synth, output, seed=cfg.seed, overwrite=overwrite)
    show(dataclasses.replace(summary, metrics={}))  # the per-family metrics get their own table below
    fams, labels = summary.metrics["families"], summary.metrics["labels"]
    t = Table(title="pairs per family and split", title_justify="left")
    t.add_column("family", style="bold", no_wrap=True, min_width=15)
    t.add_column("difficulty")
    for split in fams:
        t.add_column(split, justify="right")
    for fam, diff in summary.metrics["difficulty"].items():
        t.add_row(fam, diff, *(str(fams[s].get(fam, "")) for s in fams))
    t.add_row("gold A / B", "", *(f"{labels[s]['A']} / {labels[s]['B']}" for s in fams), style="italic")
    err_console.print(t)


# ---- import / export / stats / merge / split (stages/data_import.py, core/formats/, core/datatools.py)

def _import_format(value: str) -> str:
    """--format of `data import`: a usage error (exit 2, like any bad option value) when unknown."""
    from ..core.formats import FORMATS
    if value not in FORMATS:
        raise typer.BadParameter(f"unknown format {value!r}; choose from {', '.join(FORMATS)}")
    return value


def _export_format(value: str) -> str:
    from ..core.formats import EXPORTERS
    if value not in EXPORTERS:
        raise typer.BadParameter(f"unknown export format {value!r}; choose from {', '.join(EXPORTERS)}")
    return value


FormatOpt = Annotated[str, typer.Option("--format", "-f", help="Input format: auto, pairs, helpsteer3, rmbench, "
                                                                "judgebench, rewardbench, qa (Q&A dumps: question + "
                                                                "voted answers → unlabeled pairs; see docs/data.md).",
                                         callback=_import_format)]
OrderOpt = Annotated[str, typer.Option("--order", help="Which response is A: random (the default: a seeded "
                                                       "coin per pair, so about half the labels are A), fixed "
                                                       "(the source's order: chosen first, every label A), "
                                                       "both (one record per order, linked by "
                                                       "meta.pair_group).")]


def _parse_list(value: str | None, cast, opt: str) -> list:
    if not value:
        return []
    try:
        return [cast(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        raise GramrError(f"{opt}: expected comma-separated numbers, got {value!r}") from None


@command(app, "import", epilog="Example: gramr2 data import hs3.jsonl --format helpsteer3 --order random "
                               "--seed 1 -o out/hs3")
def import_cmd(inputs: InputsArg, output: OutputOpt, fmt: FormatOpt = "auto", order: OrderOpt = "random",
               seed: Annotated[int, typer.Option("--seed", help="Seed of --order random.")] = 0,
               source: Annotated[str, typer.Option("--source", help="The records' 'source' (default: the "
                                                                     "format name).")] = "",
               batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Records per flush.")] = 256,
               unlabeled: Annotated[bool, typer.Option("--unlabeled", help="Import as unlabeled pairs (for "
                                                       "self-label): each label moves to meta.gold_label, so "
                                                       "pseudo-label precision can still be measured.")] = False,
               overwrite: OverwriteOpt = False, shard_index: ShardIndexOpt = None,
               num_shards: NumShardsOpt = None) -> None:
    """Import prompt/chosen/rejected, HelpSteer3, RewardBench, RM-Bench, JudgeBench or Q&A-dump data as pair
    shards (--unlabeled: pairs for self-labeling; Q&A dumps are always unlabeled).

    Resumable: rerunning on the same -o skips records already written. Rows the format drops (HelpSteer3 ties,
    JudgeBench labels other than A>B/B>A) are counted in the summary. RM-Bench's per-domain files take their
    domain from the file name; records no benchmark scorer can use get a warning."""
    from rich.markup import escape
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ..core import formats
    from ..stages import data_import
    cfg = formats.ImportConfig(format=fmt, order=order, seed=seed, source=source, batch_size=batch_size,
                               unlabeled=unlabeled)
    with Progress(SpinnerColumn(), TextColumn("importing: {task.completed} records"), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task("import", total=None)
        summary = data_import.run(cfg, inputs, output, overwrite=overwrite, shard_index=shard_index,
                              num_shards=num_shards,
                              progress=lambda n: n % 200 or bar.update(task, completed=n))
    show(summary)
    for w in summary.metrics.get("warnings", []):
        err_console.print(escape(w), style="yellow", soft_wrap=True)


@command(app, "export", epilog="Example: gramr2 data export out/filtered --format alpaca -o sft.jsonl")
def export_cmd(inputs: InputsArg,
               output: Annotated[Path, typer.Option("-o", "--output", help="Output JSONL file ('-' = stdout).")],
               fmt: Annotated[str, typer.Option("--format", "-f", help="pairs (prompt/chosen/rejected for "
                                                                       "TRL/OpenRLHF) or alpaca (LLaMA-Factory "
                                                                       "SFT on the judge prompt).",
                                                                       callback=_export_format)] = "pairs",
               prompt_version: Annotated[str, typer.Option("--prompt-version", help="Judge prompt for alpaca: "
                                                                                   "gramr2-v1 or gram-rr.")]
               = "gramr2-v1",
               messages: Annotated[bool, typer.Option("--messages", help="pairs: TRL conversational form "
                                                                         "(message lists).")] = False,
               overwrite: OverwriteOpt = False) -> None:
    """Export labeled pairs for TRL/OpenRLHF (prompt/chosen/rejected) or LLaMA-Factory SFT (alpaca)."""
    from ..core import formats
    show(formats.export(inputs, output, fmt, prompt_version=prompt_version, messages=messages,
                        overwrite=overwrite))


@command(app, "stats", epilog="Example: gramr2 data stats out/hs3 --json > stats.json")
def stats_cmd(inputs: InputsArg,
              as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")]
              = False) -> None:
    """Counts, label balance, length percentiles (characters) and categories of a record set."""
    import json

    from rich.console import Console
    from rich.table import Table

    from ..core import datatools, readers
    s = datatools.stats(readers.read(inputs))
    if as_json:
        typer.echo(json.dumps(s, indent=2, ensure_ascii=False))
        return
    con = Console()
    t = Table(title="records", show_header=False, title_justify="left")
    for k in ("count", "labeled", "unlabeled", "label_A", "label_B", "share_A", "rationales"):
        t.add_row(k, str(s[k]))
    con.print(t)
    lt = Table(title="lengths (characters)", title_justify="left")
    for c in ("field", "n", "p50", "p90", "max"):
        lt.add_column(c, justify="left" if c == "field" else "right")
    for f, v in s["lengths"].items():
        lt.add_row(f, *(str(v[c]) if v[c] is not None else "-" for c in ("n", "p50", "p90", "max")))
    con.print(lt)
    for title in ("categories", "sources"):
        ct = Table(title=title, title_justify="left")
        ct.add_column(title[:-1] if title == "sources" else "category")
        ct.add_column("count", justify="right")
        for k, v in s[title].items():
            ct.add_row(k, str(v))
        con.print(ct)


@command(app, "merge", epilog="Example: gramr2 data merge out/import -o out/merged   # joins part-*-of-N files")
def merge_cmd(inputs: InputsArg, output: OutputOpt, overwrite: OverwriteOpt = False,
              allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Merge inputs that are "
                                                          "unfinished stage outputs (manifest done: false, or "
                                                          "missing shards) instead of refusing them.")]
              = False) -> None:
    """Join shard parts / record sets into one shard directory (by id, duplicates skipped and counted).

    An unfinished input (a killed run, 3 of 4 shards) is refused unless --allow-partial."""
    from rich.markup import escape

    from ..core import datatools
    summary = datatools.merge(inputs, output, overwrite=overwrite, allow_partial=allow_partial)
    for inp, why in summary.metrics.get("partial_inputs", {}).items():
        err_console.print(f"[bold yellow]warning:[/] merged an unfinished input: {escape(inp)}: {escape(why)} "
                          f"(the merged set is missing its records)", soft_wrap=True)
    show(summary)


@command(app, "split", epilog="Example: gramr2 data split out/hs3 -o out/hs3-split --ratio 0.9,0.1 "
                              "--names train,dev --seed 0")
def split_cmd(inputs: InputsArg, output: OutputOpt,
              ratio: Annotated[Optional[str], typer.Option("--ratio", help="Comma-separated shares, one per "
                                                                           "name: 0.8,0.2.")] = None,
              count: Annotated[Optional[str], typer.Option("--count", help="Sizes of all parts but the last "
                                                                           "(which gets the rest): 100.")] = None,
              names: Annotated[str, typer.Option("--names", help="Part names = output subdirectories.")]
              = "train,test",
              seed: Annotated[int, typer.Option("--seed", help="Shuffle seed.")] = 0,
              overwrite: OverwriteOpt = False) -> None:
    """Split records into seeded parts (out/<name>/) by ratio or count; both orders of a pair stay together."""
    from ..core import datatools
    cfg = datatools.SplitConfig(ratio=_parse_list(ratio, float, "--ratio"), count=_parse_list(count, int, "--count"),
                                names=[n.strip() for n in names.split(",") if n.strip()], seed=seed)
    show(datatools.split(inputs, output, cfg, overwrite=overwrite))


@command(app, "augment", epilog="Example: gramr2 data augment out/synth/labeled -o out/augmented --fraction 0.25 "
                                 "--injection-fraction 0.25")
def augment_cmd(inputs: InputsArg, output: OutputOpt,
                fraction: Annotated[Optional[float], typer.Option("--fraction", help="Opener pairs as a share "
                                                                  "of the input records (default 0.25; 0 = none).")
                                    ] = None,
                injection_fraction: Annotated[Optional[float], typer.Option(
                    "--injection-fraction", help="Injection negatives as a share of the input records (default "
                    "0.25; 0 = none).")] = None,
                seed: SeedOpt = None, recipe: ConfigOpt = None, override: SetOpt = None,
                overwrite: OverwriteOpt = False) -> None:
    """Add Master-RM-style negatives: a content-free opener ("Thought process:", "Solution", ":") as the LOSING
    response against each sampled pair's gold response (arXiv 2507.08794), and injection negatives: the gold-wrong
    response asserting a verdict for its own slot ("<answer>B</answer>", "Conclusion: Response B is better."),
    labeled against it (issue 25). Both slots balanced, a synthetic rationale when the input has rationales;
    ours, not the GRAM-R² paper's. Writes the inputs plus the new pairs."""
    from ..stages import augment
    cfg = load_recipe(recipe, override, seed=seed, augment__fraction=fraction,
                      augment__injection_fraction=injection_fraction)
    show(augment.run(cfg, inputs, output, overwrite=overwrite))
