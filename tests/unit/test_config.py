from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gramr2_cli import recipe
from gramr2_cli.cli import app
from gramr2_cli.core import config
from gramr2_cli.core.errors import ConfigError, GramrError

ROOT = Path(__file__).resolve().parents[2]
YAMLS = sorted(ROOT.joinpath("recipes").glob("**/*.yaml"))


def is_accelerate_config(path: Path) -> bool:
    """`accelerate launch --config_file` YAML (not a gramr2 recipe): accelerate's own top-level keys."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return isinstance(data, dict) and {"compute_environment", "distributed_type"} <= set(data)


RECIPES = [p for p in YAMLS if not is_accelerate_config(p)]


def test_defaults_and_typed_overrides():
    cfg = recipe.load(None, ["train.lr=1e-5", "train.max_steps=20", "generate.engine=hf",
                             "filter.balance_ab=no", "train.lora.target_modules=q_proj,v_proj"])
    assert cfg.train.lr == 1e-5 and isinstance(cfg.train.lr, float)
    assert cfg.train.max_steps == 20 and isinstance(cfg.train.max_steps, int)
    assert cfg.filter.balance_ab is False
    assert cfg.train.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.generate.engine == "hf"


def test_yaml_values_are_coerced_not_guessed(tmp_path):
    # PyYAML reads 1e-5 as a string and `no` as False; the field type decides.
    r = tmp_path / "r.yaml"
    r.write_text("model: embedded:smollm2-135m\ntrain:\n  lr: 1e-5\n  epochs: 2\nprompt: gram-rr\n")
    cfg = recipe.load(r)
    assert cfg.train.lr == 1e-5 and cfg.train.epochs == 2.0 and cfg.prompt == "gram-rr"


def test_unknown_key_suggests_closest():
    with pytest.raises(GramrError) as e:
        recipe.load(None, ["train.lr_rate=1"])
    assert e.value.message == ("unknown config key 'train.lr_rate' "
                               "(did you mean 'train.lr', 'train.lora.r', 'train.warmup_ratio'?)")


@pytest.mark.parametrize("item, msg", [
    ("train.max_steps=abc", "config key 'train.max_steps': expected int, got 'abc'"),
    ("train.max_steps=1.5", "config key 'train.max_steps': expected int, got '1.5'"),
    ("filter.balance_ab=maybe", "config key 'filter.balance_ab': expected bool, got 'maybe'"),
    ("train=3", "config key 'train' is a section; set its keys, e.g. 'train.<key>=...'"),
    ("nokey", "--set 'nokey': expected key=value, e.g. --set train.lr=1e-5"),
    ("generate.engine=tpu", "generate.engine: unknown engine 'tpu'; choose from auto, hf, vllm, openai"),
    ("rank.method=bubble",
     "rank.method: unknown value 'bubble'; choose from knockout, full, tournament, mergesort, round_robin"),
    ("self_label.orders=ba2", "self_label.orders: unknown value 'ba2'; choose from ab, both"),
    ("train.objective=dpo",
     "train.objective: unknown value 'dpo'; choose from reasoning, prover, label, pairgen"),
    ("prompt=v9", "prompt: unknown value 'v9'; choose from gramr2-v1, gramr2-short, gram-rr, gramr2-v1+raw, gramr2-short+raw, gram-rr+raw"),
    ("train.label_smoothing=0.5", "train.label_smoothing must be in [0.0, 0.5), got 0.5"),
    ("train.lora.r=0", "train.lora.r must be >= 1, got 0"),
    ("synth.splits.test=-1", "synth.splits.test must be >= 0, got -1.0"),
    ("generate.top_p=0", "generate.top_p must be in (0.0, 1.0], got 0.0"),
    ("self_train.unlabeled=a,b",
     "self_train.unlabeled: give one source (split into 3 batches) or exactly 3, got 2"),
])
def test_bad_overrides(item, msg):
    with pytest.raises(ConfigError) as e:
        recipe.load(None, [item])
    assert e.value.problems == [msg]


def test_every_problem_at_once_in_order(tmp_path):
    """Keys that cannot be set (recipe, then --set, then flags), then each section's checks in field order."""
    r = tmp_path / "r.yaml"
    r.write_text("train:\n  lr_rate: 1\nrank:\n  votes: 0\nserve:\n  port: 0\n")
    with pytest.raises(ConfigError) as e:
        recipe.load(r, ["prove.k=0", "seed=x"], generate__engine="tpu")
    assert e.value.problems == [
        "unknown config key 'train.lr_rate' (did you mean 'train.lr', 'train.lora.r', "
        "'train.warmup_ratio'?)",
        "config key 'seed': expected int, got 'x'",
        "generate.engine: unknown engine 'tpu'; choose from auto, hf, vllm, openai",
        "prove.k must be >= 1, got 0",
        "rank.votes must be >= 1, got 0",
        "serve.port must be in 1..65535, got 0",
    ]


def test_extends_one_level(tmp_path):
    (tmp_path / "base.yaml").write_text("seed: 5\ntrain:\n  lr: 0.001\n  batch_size: 4\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\ntrain:\n  batch_size: 2\n")
    cfg = recipe.load(tmp_path / "child.yaml")
    assert (cfg.seed, cfg.train.lr, cfg.train.batch_size) == (5, 0.001, 2)
    (tmp_path / "grandchild.yaml").write_text("extends: child.yaml\n")
    with pytest.raises(GramrError, match="one level deep"):
        recipe.load(tmp_path / "grandchild.yaml")


def test_bad_yaml_and_missing_recipe(tmp_path):
    (tmp_path / "bad.yaml").write_text("train: [1,\n")
    with pytest.raises(GramrError, match="invalid YAML"):
        recipe.load(tmp_path / "bad.yaml")
    with pytest.raises(GramrError, match="recipe not found"):
        recipe.load(tmp_path / "nope.yaml")


def test_direct_flags_override_recipe():
    cfg = recipe.load(None, ["seed=3"], seed=9, model=None)
    assert cfg.seed == 9 and cfg.model == "embedded:smollm2-135m"


# ---------------------------------------------------------------- config.py is generic

@dataclass
class Inner:
    size: int = 1

    def check(self) -> list[str]:
        return config.at_least("size", self.size, 1)


@dataclass
class Outer:
    name: str = "a"
    rate: float = 0.5
    inner: Inner = field(default_factory=Inner)

    def check(self) -> list[str]:
        return config.choice("name", self.name, ("a", "b"))


def test_load_into_any_dataclass(tmp_path):
    r = tmp_path / "r.yaml"
    r.write_text("name: b\ninner:\n  size: '7'\n")
    got = config.load_dataclass(Outer, r, ["rate=1e-3"])
    assert got == Outer(name="b", rate=0.001, inner=Inner(size=7))
    with pytest.raises(ConfigError) as e:
        config.load_dataclass(Outer, None, ["name=c", "inner.size=0", "inner.sise=2"])
    assert e.value.problems == ["unknown config key 'inner.sise' (did you mean 'inner.size'?)",
                                "name: unknown value 'c'; choose from a, b", "inner.size must be >= 1, got 0"]


def test_ensure_checks_one_section_with_its_prefix():
    config.ensure(Inner(size=3), "outer.inner.")
    with pytest.raises(ConfigError) as e:
        config.ensure(Inner(size=0), "outer.inner.")
    assert e.value.problems == ["outer.inner.size must be >= 1, got 0"]


def test_sections_hash_inputs_are_the_same_dicts():
    """Stages hash `config.sections(cfg, ...)`: moving the section classes must not change these dicts."""
    cfg = recipe.load()
    got = config.sections(cfg, "model", "seed", "generate", "prove")
    assert got == {
        "model": "embedded:smollm2-135m", "seed": 0,
        "generate": {"engine": "auto", "max_new_tokens": 192, "temperature": 0.8, "top_p": 1.0, "batch_size": 16,
                     "dtype": "auto", "tensor_parallel_size": 1, "gpu_memory_utilization": 0.85, "kv_cache_gb": 2,
                     "verdict_only": False, "truncate": "skip", "retry_truncated_tokens": 0, "endpoints": [],
                     "max_concurrency": 8, "request_timeout": 600.0, "retries": 3},
        "prove": {"prover": "", "k": 4, "temperature": 0.8, "top_p": 1.0, "max_new_tokens": 160,
                  "keep_candidates": False, "check_claims": True, "twins_together": True},
    }
    assert list(config.to_dict(cfg)) == ["model", "prompt", "seed", "generate", "train", "synth", "prove",
                                         "self_label", "filter", "rank", "evaluate", "probe", "augment", "serve",
                                         "self_train"]


# ---------------------------------------------------------------- shipped recipes

def test_only_accelerate_configs_are_left_out():
    names = sorted(str(p.relative_to(ROOT)) for p in YAMLS if p not in RECIPES)
    assert names == ["recipes/accelerate/ddp_cpu.yaml", "recipes/accelerate/deepspeed_zero2.yaml",
                     "recipes/accelerate/deepspeed_zero3.yaml", "recipes/accelerate/fsdp.yaml"]
    assert len(RECIPES) >= 20


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_every_shipped_recipe_passes_config_check(path):
    r = CliRunner().invoke(app, ["config", "check", str(path)])
    assert (r.exit_code, r.output.strip()) == (0, f"ok {path}")
