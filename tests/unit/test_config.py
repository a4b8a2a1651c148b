from pathlib import Path

import pytest

from gramr2_cli import config
from gramr2_cli.errors import GramrError

RECIPES = sorted(Path(__file__).resolve().parents[2].joinpath("recipes").glob("**/*.yaml"))


def test_defaults_and_typed_overrides():
    cfg = config.load(None, ["train.lr=1e-5", "train.max_steps=20", "generate.engine=hf",
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
    cfg = config.load(r)
    assert cfg.train.lr == 1e-5 and cfg.train.epochs == 2.0 and cfg.prompt == "gram-rr"


def test_unknown_key_suggests_closest():
    with pytest.raises(GramrError) as e:
        config.load(None, ["train.lr_rate=1"])
    assert "unknown config key 'train.lr_rate'" in e.value.message and "'train.lr'" in e.value.message


@pytest.mark.parametrize("item, msg", [
    ("train.max_steps=abc", "expected int"),
    ("train.max_steps=1.5", "expected int"),
    ("filter.balance_ab=maybe", "expected bool"),
    ("train=3", "is a section"),
    ("nokey", "expected key=value"),
    ("generate.engine=tpu", "unknown engine"),
    ("rank.method=bubble", "rank.method: unknown value 'bubble'; choose from knockout"),
    ("self_label.orders=ba2", "self_label.orders: unknown value"),
    ("train.objective=dpo", "train.objective: unknown value 'dpo'"),
    ("prompt=v9", "prompt: unknown value"),
])
def test_bad_overrides(item, msg):
    with pytest.raises(GramrError, match=msg):
        config.load(None, [item])


def test_extends_one_level(tmp_path):
    (tmp_path / "base.yaml").write_text("seed: 5\ntrain:\n  lr: 0.001\n  batch_size: 4\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\ntrain:\n  batch_size: 2\n")
    cfg = config.load(tmp_path / "child.yaml")
    assert (cfg.seed, cfg.train.lr, cfg.train.batch_size) == (5, 0.001, 2)
    (tmp_path / "grandchild.yaml").write_text("extends: child.yaml\n")
    with pytest.raises(GramrError, match="one level deep"):
        config.load(tmp_path / "grandchild.yaml")


def test_bad_yaml_and_missing_recipe(tmp_path):
    (tmp_path / "bad.yaml").write_text("train: [1,\n")
    with pytest.raises(GramrError, match="invalid YAML"):
        config.load(tmp_path / "bad.yaml")
    with pytest.raises(GramrError, match="recipe not found"):
        config.load(tmp_path / "nope.yaml")


def test_direct_flags_override_recipe():
    cfg = config.load(None, ["seed=3"], seed=9, model=None)
    assert cfg.seed == 9 and cfg.model == "embedded:smollm2-135m"


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_every_shipped_recipe_validates(recipe):
    if "accelerate" in recipe.parts or "slurm" in recipe.parts:
        pytest.skip("not a gramr2 recipe (accelerate/slurm config)")
    config.load(recipe)
