"""Shared CLI plumbing: the error guard (exit codes of DESIGN §6), common options, the summary table."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..core.errors import ConfigError, GramrError
from ..core.shards import Summary

err_console = Console(stderr=True)
STATE = {"debug": False}

# ---- common options (the same spelling in every command)
InputsArg = Annotated[list[Path], typer.Argument(help="Record files/directories (JSONL, JSON, Parquet, shard or "
                                                      "datasets dirs); '-' reads JSONL from stdin.")]
OutputOpt = Annotated[Path, typer.Option("-o", "--output", help="Output directory ('-' = JSONL on stdout where "
                                                               "records are written).")]
ConfigOpt = Annotated[Optional[Path], typer.Option("-c", "--config", help="Recipe YAML (see recipes/).")]
SetOpt = Annotated[Optional[list[str]], typer.Option("-s", "--set", help="Dotted override, repeatable: "
                                                                       "-s train.lr=1e-5")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed (default: the recipe's seed).")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Model: embedded:smollm2-135m, a local HF "
                                                                      "directory, or a hub id when online.")]
EngineOpt = Annotated[Optional[str], typer.Option("--engine", help="Generation engine: auto, vllm, hf, or openai (remote `vllm serve` endpoints in -s generate.endpoints=[URL,...]).")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output directory.")]
ShardIndexOpt = Annotated[Optional[int], typer.Option("--shard-index", help="This process's shard (0-based).")]
NumShardsOpt = Annotated[Optional[int], typer.Option("--num-shards", help="Number of shards (cluster array jobs).")]


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, a scheduler's cancel) raised as an exception, like Ctrl-C, so that `finally`
    blocks and exit handlers run: the default action ends the process at once and leaves vLLM's engine-core
    processes running as orphans, holding the cores (or a GPU's memory)."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises():
    """While a command runs, SIGTERM raises `Terminated` (main thread only; a handler someone else installed,
    e.g. uvicorn's inside `serve`, is left alone and restored afterwards)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _close_engines() -> None:
    """Close the engines this process loaded (vLLM: stop its engine-core processes). Imported only if a command
    loaded one: the module is then in sys.modules."""
    engines = sys.modules.get(__package__.rsplit(".", 1)[0] + ".engines")
    if engines is not None:
        engines.close_all()


def guard(fn):
    """Map errors to DESIGN §6 exit codes: GramrError → 1 line on stderr (a ConfigError: one per problem) + exit 1;
    Ctrl-C → exit 130; SIGTERM → the loaded engines are closed, exit 143; a closed stdout pipe → exit 0."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with sigterm_raises():
                return fn(*args, **kwargs)
        except Terminated:
            _close_engines()
            err_console.print("[yellow]terminated (SIGTERM); rerun the same command to resume[/]")
            raise typer.Exit(143) from None
        except GramrError as e:
            if STATE["debug"]:
                raise
            # escape(): messages quote user text (labels, paths, values) that must not be read as rich markup
            for line in e.problems if isinstance(e, ConfigError) else [e.message]:
                err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
            if e.hint:
                err_console.print(f"[yellow]hint:[/] {escape(e.hint)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted; rerun the same command to resume[/]")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # stdout's reader went away (`-o - | head -1`): end quietly with exit 0, as Unix filters do; stdout
            # now points at devnull so the flush at exit cannot fail a second time
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise                              # anything else is a bug: its traceback shows
            # a full disk (or quota): what was written is flushed per batch, so the output stays resumable
            err_console.print(f"[bold red]error:[/] {escape(str(e.filename or 'output'))}: no space left on device",
                              highlight=False, soft_wrap=True)
            err_console.print("[yellow]hint:[/] free some space, then rerun the same command to resume",
                              highlight=False)
            if e.filename is None:                 # stdout itself is full: keep the exit flush from failing again
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(1) from None
    return wrapper


def command(app: typer.Typer, name: str, **kw):
    """`@command(app, "filter")` = `app.command("filter")` with the error guard."""
    def deco(fn):
        return app.command(name, **kw)(guard(fn))
    return deco


def show(summary: Summary) -> None:
    """Print a stage summary as a table on stderr (stdout is for data)."""
    t = Table(title=f"{summary.stage} summary", show_header=False, title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value")
    for k, v in summary.counts.items():
        t.add_row(escape(k), escape(str(v)))
    for k, v in summary.skipped.items():
        t.add_row(escape(f"skipped: {k}"), escape(str(v)))
    for k, v in summary.metrics.items():
        if isinstance(v, float):
            v = f"{v:.4g}"
        elif isinstance(v, (dict, list)):
            v = str(v) if len(str(v)) < 120 else f"{type(v).__name__} ({len(v)} items, see summary.json)"
        t.add_row(escape(k), escape(str(v)))
    t.add_row("seconds", f"{summary.seconds:.1f}")
    for o in summary.outputs:
        t.add_row("output", escape(o))   # paths and values are user text, not rich markup
    err_console.print(t)


def set_threads() -> None:
    """Honour GRAMR2_THREADS (torch intra-op threads) for runs sharing the CPU."""
    n = os.environ.get("GRAMR2_THREADS")
    if n:
        import torch
        torch.set_num_threads(int(n))

