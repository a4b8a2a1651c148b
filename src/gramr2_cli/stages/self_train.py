"""self-train: the iterative loop of GRAM-R² pre-training (paper §3): per unlabeled batch i,

    self-label (current RM) → prove (pseudo-labels as l) → filter → merge with earlier training data → pretrain

The new reward model labels the next batch. Each step writes its own directory under `<output>/iter-<i>/`
(`labeled`, `proved`, `kept`, `train`, `rm`) and is skipped when that directory's manifest says done, so rerunning
the same command resumes where a kill left it (a half-written step resumes too: every stage is resumable).
`make self-train ITER=3` (mk/self-train.mk) calls this loop through `gramr2 self-train`; it has no copy of it.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ..core import config, datatools, outdir, readers, shards
from ..core.errors import GramrError
from . import filter as filter_stage
from . import prove, self_label, training

if TYPE_CHECKING:
    from ..recipe import Config

STEPS = ("labeled", "proved", "kept", "train", "rm")


@dataclass
class SelfTrainConfig:
    iterations: int = 3             # paper: 3
    init: str = "backbone"          # backbone (retrain from `model` each time) | continue (from the last RM);
                                    # paper: not stated
    rm: str = ""                    # the initial reward model, which labels batch 1 (a `gramr2 pretrain` output)
    unlabeled: list[str] = field(default_factory=list)   # one source, split into `iterations` batches by id
                                                         # hash; or exactly one source per iteration
    train_data: list[str] = field(default_factory=list)  # the labeled data the initial RM was trained on
    lr: float = 0.0                 # learning rate of an iteration that continues from the last RM (init:
                                    # continue); 0 = train.lr (ours; paper: not stated). The demo's: 5e-5
                                    # (docs/notes/learnability.md); from the backbone, train.lr always

    def check(self) -> list[str]:
        """Problems of this section (keys relative to `self_train`). What is given at run time (the initial RM,
        the unlabeled pairs as arguments) is checked by `check_ready`."""
        found = [*config.at_least("iterations", self.iterations, 1), *config.at_least("lr", self.lr, 0),
                 *config.choice("init", self.init, ("backbone", "continue"))]
        if len(self.unlabeled) not in (0, 1, self.iterations):
            found.append(f"unlabeled: give one source (split into {self.iterations} batches) or exactly "
                         f"{self.iterations}, got {len(self.unlabeled)}")
        return found


def step_dir(output: Path | str, i: int, step: str) -> Path:
    """`<output>/iter-<i>/<step>`: where step `step` of iteration i (1-based) writes."""
    return Path(output) / f"iter-{i}" / step


def batch_of(st: SelfTrainConfig, i: int) -> tuple[list[str], int | None, int | None]:
    """(inputs, shard_index, num_shards) of iteration i's unlabeled batch. Raises GramrError for a source count
    that is neither 1 nor `iterations`."""
    if len(st.unlabeled) == 1:
        return list(st.unlabeled), i - 1, st.iterations
    if len(st.unlabeled) == st.iterations:
        return [st.unlabeled[i - 1]], None, None
    raise GramrError(f"self_train.unlabeled: give one source (split into {st.iterations} batches) or exactly "
                     f"{st.iterations}, got {len(st.unlabeled)}")


def check_ready(cfg: Config) -> None:
    """Raises GramrError (ConfigError for the section's own problems) for a loop that cannot start: checked
    before any model is loaded."""
    st = cfg.self_train
    config.ensure(st, "self_train.")
    if not st.rm:
        raise GramrError("self-train needs the initial reward model", hint="set self_train.rm (a 'gramr2 pretrain' "
                                                                           "output) in the recipe or with -s")
    if not cfg.prove.prover:
        raise GramrError("self-train needs a prover model", hint="set prove.prover (a 'gramr2 prover-train' output)")
    if not st.unlabeled:
        raise GramrError("self-train needs unlabeled pairs", hint="pass them as arguments or set self_train.unlabeled")
    batch_of(st, 1)


def continued_lr(cfg: Config) -> float:
    """The learning rate of an iteration that continues from the last RM: `self_train.lr`, or `train.lr` when 0.
    (A compute-matched control continuing from the same RM must train at it too: benchmarks/replicate.py.)"""
    return cfg.self_train.lr or cfg.train.lr


def iteration_config(cfg: Config, output: Path | str, i: int) -> tuple[Config, Config]:
    """(labeling config, training config) of iteration i: the labeler is the previous RM; training starts
    from the backbone (`model`) at `train.lr` or, with init=continue, from the previous RM at `self_train.lr`
    (when set)."""
    prev_rm = cfg.self_train.rm if i == 1 else str(step_dir(output, i - 1, "rm"))
    lab = copy.deepcopy(cfg)
    lab.model = prev_rm
    tr = copy.deepcopy(cfg)
    tr.train.init = "backbone" if cfg.self_train.init == "backbone" else prev_rm
    if cfg.self_train.init == "continue":
        tr.train.lr = continued_lr(cfg)
    return lab, tr


def run(cfg: Config, output: Path | str, *, progress: bool = True,
        log: Callable[[str], None] | None = None) -> shards.Summary:
    """Run `cfg.self_train.iterations` iterations into `output`; returns a Summary whose metrics hold one row
    per iteration (pseudo-label counts, kept pairs, precision vs gold where known, final training loss).

    Raises GramrError for a bad loop config (see `check_ready`) or from any stage."""
    check_ready(cfg)
    t0 = time.time()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    st = cfg.self_train
    outdir.atomic_write(output / "config.yaml", yaml.safe_dump(config.to_dict(cfg), sort_keys=False, allow_unicode=True))
    say = log or (lambda m: None)
    counts = {"steps_run": 0, "steps_skipped": 0}
    rows = []
    for i in range(1, st.iterations + 1):
        lab_cfg, train_cfg = iteration_config(cfg, output, i)
        inputs, shard_index, num_shards = batch_of(st, i)
        d = {s: step_dir(output, i, s) for s in STEPS}
        prev_train = list(st.train_data) if i == 1 else [str(step_dir(output, i - 1, "train"))]
        steps = [
            ("labeled", partial(self_label.run, lab_cfg, inputs, d["labeled"], shard_index=shard_index,
                                num_shards=num_shards, progress=progress)),
            ("proved", partial(prove.run, cfg, [d["labeled"]], d["proved"], progress=progress)),
            ("kept", partial(filter_stage.run, cfg, [d["proved"]], d["kept"])),
            ("train", partial(datatools.merge, [*prev_train, d["kept"]], d["train"])),   # = gramr2 data merge
            ("rm", partial(training.run, train_cfg, [d["train"]], d["rm"], stage="pretrain", resume=True)),
        ]
        for name, fn in steps:
            if outdir.shard_done(d[name], *((shard_index, num_shards) if name == "labeled" else (None, None))):
                counts["steps_skipped"] += 1
                say(f"iteration {i}: {name} done, skipped ({d[name]})")
                continue
            say(f"iteration {i}: {name} → {d[name]}")
            fn()
            counts["steps_run"] += 1
        rows.append(_iteration_row(i, d, shard_index, num_shards))
    summary = shards.Summary("self-train", counts, {}, time.time() - t0, [str(output)], {"iterations": rows})
    outdir.write_json(output / "summary.json", summary.to_dict())
    return summary


def _read_summary(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _iteration_row(i: int, d: dict[str, Path], shard_index: int | None, num_shards: int | None) -> dict:
    """One iteration's numbers, read back from each step's output (so skipped steps report too)."""
    lab = _read_summary(d["labeled"] / outdir.meta_name("summary", shard_index, num_shards))
    proved, kept, trn, rm = (_read_summary(d[s] / "summary.json") for s in ("proved", "kept", "train", "rm"))

    def out(summary: dict, step: str) -> int | None:   # records on disk: a resumed step's counts are partial
        if not summary:
            return None
        return sum(p.read_bytes().count(b"\n") for p in d[step].glob(readers.PART_GLOB))

    return {
        "iteration": i,
        "labeled": out(lab, "labeled"),
        "label_precision": lab.get("metrics", {}).get("precision_vs_gold"),
        "proved": out(proved, "proved"),
        "kept": out(kept, "kept"),
        "kept_precision": kept.get("metrics", {}).get("precision_after"),
        "train_records": out(trn, "train"),
        "final_loss": rm.get("metrics", {}).get("final_loss"),
        "rm": str(d["rm"]),
    }

