"""The stage skeleton, once: open the output, work out what is left, load/close the engine, the batch loop, and
the multi-model loop of the report stages.

Every model-running stage (self-label, prove, rank pairs, rank list, evaluate, evaluate on lists, probe) is

    with runner.open_output(output, stage=..., config=..., ...) as out:
        recs, todo = runner.read_left(out, inputs)        # or runner.left(out, recs) for records in memory
        runner.run_model(out, cfg, recs, work, handle, engine=engine, ...)

where `work(engine, batch)` gives one result per record (judgments, selections, proofs) and `handle(rec,
result)` returns the record to write. The report stages (evaluate, probe) go through `models()` and
`each_model()` instead. `judge` holds the judging itself and knows nothing of engines' lifetimes or outputs.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import engines
from .core import config, progress, prompts, readers, shards
from .core import models as model_specs
from .core.errors import GramrError

if TYPE_CHECKING:
    from .core.shards import Output


# ---------------------------------------------------------------- the output and what is left

def open_output(output: Path | str, *, stage: str, config: Any, inputs: list | None = None, overwrite: bool = False,
                shard_index: int | None = None, num_shards: int | None = None, provenance: dict | None = None,
                batch_size: int = 64) -> shards.open_output:
    """The one place a model-running stage opens its output (`shards.open_output`: manifest, config hash,
    resume). Raises GramrError for a bad shard index or an output that cannot be resumed."""
    return shards.open_output(output, stage=stage, config=config, inputs=inputs, overwrite=overwrite,
                              shard_index=shard_index, num_shards=num_shards, provenance=provenance,
                              batch_size=batch_size)


def left(out: Output, recs: Iterable[dict]) -> list[dict]:
    """What is left to do: the records of `recs` whose id `out` has not written yet, in order. The one
    definition of resume for every stage."""
    return [r for r in recs if r["id"] not in out.done_ids]


def read_left(out: Output, inputs: Iterable[Path | str], **read_kw) -> tuple[list[dict], list[dict]]:
    """(every record of `inputs` in `out`'s shard, `left` of them), counting read skips and `already_done` in
    `out`'s summary. `read_kw` goes to `readers.read_all` (e.g. `normalize=` for list records)."""
    skipped: Counter = Counter()
    recs = readers.read_all(inputs, skipped=skipped, shard_index=out.shard_index, num_shards=out.num_shards,
                           **read_kw)
    todo = left(out, recs)
    for k, v in {**skipped, "already_done": len(recs) - len(todo)}.items():
        if v:
            out.skip(k, v)
    return recs, todo


# ---------------------------------------------------------------- engines

def prompt_mismatch(cfg, model: str) -> str | None:
    """A warning when `model` is a gramr2-trained directory whose training prompt (`models.trained_prompt`) is not
    the version `cfg` judges with (the `+raw` suffix aside: it changes the rendering of untrusted text, not the
    prompt); a model judged through a prompt it never saw answers close to chance. None when they agree."""
    trained = model_specs.trained_prompt(model)
    if trained is None or prompts.base_version(trained)[0] == prompts.base_version(cfg.prompt)[0]:
        return None
    return (f"{model} was trained with prompt {trained!r} but is judging with {cfg.prompt!r}; "
            f"add -s prompt={trained} unless you mean to")


def recipe_engine(cfg, model: str | None = None):
    """`model` (default `cfg.model`) loaded with `cfg.generate` and `cfg.seed` (`engines.load_engine`); the
    caller closes it. Warns (`prompt_mismatch`) when the model was trained on another judge prompt."""
    model = model or cfg.model
    if (said := prompt_mismatch(cfg, model)) is not None:
        warnings.warn(said, UserWarning, stacklevel=2)
    return engines.load_engine(model, cfg.generate, cfg.seed)


@contextmanager
def engine(cfg, given=None, *, model: str | None = None, needed: bool = True) -> Iterator[Any]:
    """The engine to run: `given` (left open), or `recipe_engine(cfg, model)` closed on exit; None when there is nothing
    to do (`needed` false): no model is loaded."""
    if given is not None or not needed:
        yield given
        return
    eng = recipe_engine(cfg, model)
    try:
        yield eng
    finally:
        eng.close()


# ---------------------------------------------------------------- the batch loop

def fixed_batches(recs: list[dict], size: int, done_ids: set[str], group: Callable[[dict], Any] | None = None
                  ) -> Iterator[list[dict]]:
    """Fixed-size batches of the whole of `recs`, leaving out batches that are fully written. With `group`, a
    batch grows past `size` until the next record starts another group: neighbours of one group share a batch.

    Cutting batches from the whole input (not from what is left) is what makes a resumed run generate exactly
    what an uninterrupted one does: a half-written batch is generated again, whole, with the same seed.
    """
    if size < 1:
        raise GramrError(f"the batch size must be >= 1, got {size}")
    i = 0
    while i < len(recs):
        end = min(i + size, len(recs))
        while group is not None and end < len(recs) and group(recs[end]) == group(recs[end - 1]):
            end += 1
        batch = recs[i:end]
        i = end
        if any(r["id"] not in done_ids for r in batch):
            yield batch


def run_batches(out: Output, recs: list[dict], work: Callable[[list[dict]], list],
                handle: Callable[[dict, Any], dict | None], *, batch_size: int, progress_on: bool, desc: str,
                group: Callable[[dict], Any] | None = None) -> None:
    """The one batch loop: for each `fixed_batches` batch of `recs`, `work(batch)` gives one result per record;
    each record not written yet goes with its result to `handle`, which returns the record to write to `out`'s
    main part (or None when it wrote or skipped it itself); then the part is flushed. The bar counts the
    records not yet written."""
    with progress.bar(progress_on, len(left(out, recs)), desc) as advance:
        for batch in fixed_batches(recs, batch_size, out.done_ids, group):
            for rec, result in zip(batch, work(batch), strict=True):
                if rec["id"] in out.done_ids:
                    continue
                row = handle(rec, result)
                if row is not None:
                    out.write(row)
                advance(1)
            out.flush()


def run_model(out: Output, cfg, recs: list[dict], work: Callable[[Any, list[dict]], list],
              handle: Callable[[dict, Any], dict | None], *, engine=None, model: str | None = None,
              batch_size: int, progress_on: bool, desc: str, group: Callable[[dict], Any] | None = None
              ) -> list[dict]:
    """`run_batches` over the whole of `recs` with `work(engine, batch)`, the engine being `engine` (left open)
    or `model` / `cfg.model` loaded only when something is `left` and closed after. Returns what was left."""
    todo = left(out, recs)
    with engine_ctx(cfg, engine, model=model, needed=bool(todo)) as eng:
        run_batches(out, recs, lambda batch: work(eng, batch), handle, batch_size=batch_size,
                    progress_on=progress_on, desc=desc, group=group)
    return todo


engine_ctx = engine      # `run_model`'s own name for it (its `engine` argument shadows the function)


# ---------------------------------------------------------------- several models, one report (evaluate, probe)

def slug(spec: str) -> str:
    """A directory name for a model spec: `embedded:smollm2-135m` → `embedded-smollm2-135m`, `runs/rm/` → `rm`."""
    s = str(spec).rstrip("/")
    if "/" in s and Path(s).expanduser().exists():
        s = Path(s).name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-") or "model"


def model_slugs(specs: list[str]) -> list[str]:
    """Unique slugs in order (a repeated name gets -2, -3, …). Raises GramrError for a repeated spec."""
    if len(set(specs)) != len(specs):
        raise GramrError(f"--model given twice: {[s for s, c in Counter(specs).items() if c > 1]}")
    seen: Counter = Counter()
    out = []
    for s in specs:
        base = slug(s)
        seen[base] += 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out


def models(cfg, specs: list[str] | None, given: dict | None, output: Path | str, stage: str
           ) -> tuple[list[str], list[str]]:
    """The report stages' preamble: (model specs, their directory names). Every spec not in `given` (loaded
    engines) is resolved now, so a bad one fails before the models before it are judged. Raises GramrError for
    a repeated or unknown spec, or `-` as output (a report is a directory)."""
    specs = list(specs or [cfg.model])
    slugs = model_slugs(specs)
    for spec in specs:
        if spec not in (given or {}):
            model_specs.resolve(spec)
    if str(output) == "-":
        raise GramrError(f"{stage} writes a report directory; give -o a directory, not '-'")
    return specs, slugs


def report_dir(output: Path | str) -> Path:
    """`output` created as a directory. Raises GramrError when it is a file."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise GramrError(f"{output}: exists and is not a directory")
    output.mkdir(parents=True, exist_ok=True)
    return output


def each_model(cfg, specs: list[str], slugs: list[str], output: Path, recs: list[dict], *, stage: str,
               section: str, inputs: list, work: Callable[[Any, list[dict]], list],
               handle: Callable[[dict, Any], dict | None], batch_size: int, given: dict | None = None,
               overwrite: bool = False, progress_on: bool = True, desc: str | None = None
               ) -> Iterator[tuple[str, str, Path, dict]]:
    """The multi-model loop: for each model, `run_model` over `recs` into `output/predictions/<slug>/` (a
    resumable shard whose config hash covers model, prompt, seed, generate and `section`); yields (spec, slug,
    predictions dir, {judged, resumed}) after each model, its engine closed."""
    for spec, name in zip(specs, slugs):
        mcfg = dataclasses.replace(cfg, model=spec)
        pred_dir = output / "predictions" / name
        with open_output(pred_dir, stage=stage, config=config.sections(mcfg, "model", "prompt", "seed", "generate",
                                                                       section),
                         inputs=inputs, overwrite=overwrite, batch_size=batch_size,
                         provenance={"model": spec, "seed": cfg.seed, "prompt_version": cfg.prompt}) as out:
            todo = run_model(out, mcfg, recs, work, handle, engine=(given or {}).get(spec), batch_size=batch_size,
                             progress_on=progress_on, desc=f"{desc or stage} {name}")
        yield spec, name, pred_dir, {"judged": len(todo), "resumed": len(recs) - len(todo)}
