"""The recipe: every section of a gramr2 YAML file in one dataclass, assembled here, above the stages.

`config.py` loads YAML and overrides into any dataclass; this module names the sections. Each section's
dataclass (and its `check()`) lives beside the code that uses it, so `--set generate.max_new_tokens=16` means
the same in every command and a pipeline recipe (self-training) is one file. Stages receive the loaded `Config`
and hash `config.sections(cfg, ...)` of it; the field names and defaults here are those hashes' inputs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .core import config, prompts
from .core.errors import ConfigError
from .engines.settings import GenerateConfig
from .judging.rank import RankConfig
from .server.serve import ServeConfig
from .stages.augment import AugmentConfig
from .stages.evaluate import EvaluateConfig
from .stages.filter import FilterConfig
from .stages.probe import ProbeConfig
from .stages.prove import ProveConfig
from .stages.self_label import SelfLabelConfig
from .stages.self_train import SelfTrainConfig
from .stages.synth import SynthConfig
from .train.settings import TrainConfig


@dataclass
class Config:
    """Every recipe section. Stage sections are named after the stage."""
    model: str = "embedded:smollm2-135m"
    prompt: str = "gramr2-v1"         # judge prompt version: gramr2-v1 (short default) | gram-rr (released models);
                                      # `<version>+raw` = undefended (judge markup not neutralised; measuring only)
    seed: int = 0
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    prove: ProveConfig = field(default_factory=ProveConfig)
    self_label: SelfLabelConfig = field(default_factory=SelfLabelConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    rank: RankConfig = field(default_factory=RankConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    self_train: SelfTrainConfig = field(default_factory=SelfTrainConfig)

    def check(self) -> list[str]:
        """Problems of the top-level keys; each section checks itself (`config.problems` walks them)."""
        return config.choice("prompt", self.prompt, prompts.PROMPT_VERSIONS)


# Old spellings a recipe may still hold: (key, old value) → new value. Each is accepted with a warning.
RENAMED_VALUES = {
    ("serve.pairing", "round-robin"): "round_robin",   # one spelling with rank.method and evaluate.list_method
    ("train.init", "continue"): "backbone",            # it always trained from the backbone (self_train.init
                                                       # `continue` is the one that starts from the last RM)
}


def upgrade(cfg: Config) -> list[str]:
    """Replace the old spellings of `RENAMED_VALUES` in `cfg` by the new ones; returns one warning line each."""
    said = []
    for (key, old), new in RENAMED_VALUES.items():
        section, name = key.split(".")
        part = getattr(cfg, section)
        if getattr(part, name) == old:
            setattr(part, name, new)
            said.append(f"{key}: {old!r} is an old spelling; use {new!r} (read as {new!r})")
    return said


def load_recipe(path: Path | str | None = None, overrides: list[str] | None = None, **direct: Any) -> Config:
    """The checked Config of a recipe file (None = defaults), `--set` overrides and dedicated CLI flags given as
    `section__key=value` (None = not given). Old spellings (`RENAMED_VALUES`) are read with a FutureWarning.
    Raises ConfigError with every problem, one line each."""
    cfg, found = config.resolve(Config, path, overrides, **direct)
    for line in upgrade(cfg):
        warnings.warn(line, FutureWarning, stacklevel=2)
    found += config.problems(cfg)
    if found:
        raise ConfigError(found)
    return cfg


def load(path: Path | str | None = None, overrides: list[str] | None = None, **direct: Any) -> Config:
    """The old name of `load_recipe` (kept for code written against it; DeprecationWarning)."""
    warnings.warn("gramr2_cli.recipe.load is now load_recipe", DeprecationWarning, stacklevel=2)
    return load_recipe(path, overrides, **direct)
