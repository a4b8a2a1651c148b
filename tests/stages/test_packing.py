"""Padding-free packed batches (train/packing.py) and the precision default (hardware.py).

The packed row must give every example exactly the loss it has alone (no attention across examples), the
target-only loss must equal the model's own loss, and `precision: auto` must follow the CPU's native bf16."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from train_helpers import make_pairs, write_pairs

from gramr2_cli import recipe
from gramr2_cli.core import hardware, models
from gramr2_cli.train import core, objectives, packing

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tok(tiny_model):
    return models.load_tokenizer(str(tiny_model))


@pytest.fixture(scope="module")
def model(tiny_model):
    return models.load_model(str(tiny_model), device="cpu").eval()


@pytest.fixture(scope="module")
def rows(tok):
    """Four examples of different lengths (the packed row has three boundaries)."""
    recs = make_pairs(4, seed=3)
    for i, r in enumerate(recs):
        r["prompt"] += " Think it through." * (4 * i)
    built, _, _ = objectives.build_dataset(tok, recs, "reasoning", 512)
    assert len({len(r["input_ids"]) for r in built}) == 4
    return built


def _token_losses(logits, labels):
    """Per-position CE of next-token targets (0 where ignored): [T-1]."""
    lab = labels[1:]
    ce = F.cross_entropy(logits[:-1].float(), lab.clamp(min=0), reduction="none")
    return ce * (lab != objectives.IGNORE)


def _per_example_losses(model, rows, position_ids_reset=True):
    """Summed target loss of each example computed from ONE packed forward pass."""
    batch = packing.PackedCollator()(rows)
    if not position_ids_reset:   # plain concatenation: what a leaking pack would compute
        batch["position_ids"] = torch.arange(batch["input_ids"].shape[1])[None]
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
    per_pos = _token_losses(logits[0], batch["labels"][0])
    out, start = [], 0
    for r in rows:
        n = len(r["input_ids"])
        out.append(per_pos[start:start + n - 1].sum().item())   # positions predicting tokens 1..n-1 of this one
        start += n
    return out


def test_packed_row_gives_each_example_its_own_loss(model, rows):
    alone = []
    for r in rows:
        ids = torch.tensor([r["input_ids"]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits
        alone.append(_token_losses(logits[0], torch.tensor(r["labels"])).sum().item())
    packed = _per_example_losses(model, rows)
    assert packed == pytest.approx(alone, abs=1e-4)
    # the check can fail: without position-id restarts later examples attend to earlier ones
    leaked = _per_example_losses(model, rows, position_ids_reset=False)
    assert leaked[0] == pytest.approx(alone[0], abs=1e-4)
    assert all(abs(a - b) > 1e-3 for a, b in zip(leaked[1:], alone[1:]))


def test_collator_layout(rows):
    b = packing.PackedCollator()(rows[:2])
    n0, n1 = len(rows[0]["input_ids"]), len(rows[1]["input_ids"])
    assert b["input_ids"][0].tolist() == rows[0]["input_ids"] + rows[1]["input_ids"]
    assert b["position_ids"][0].tolist() == list(range(n0)) + list(range(n1))
    assert b["labels"][0].tolist() == [-100] + rows[0]["labels"][1:] + [-100] + rows[1]["labels"][1:]
    assert "attention_mask" not in b


@pytest.mark.parametrize("packed", [True, False])
def test_target_only_loss_equals_the_models_own_loss(model, rows, tok, packed):
    padded = objectives.Collator(tok.pad_token_id)(rows)
    batch = packing.PackedCollator()(rows) if packed else padded
    with torch.no_grad():
        want = model(**padded).loss.item()                     # the model's own loss, with the padding mask
        got, out = packing.target_loss(model, batch)
    n_targets = sum(sum(x != -100 for x in r["labels"][1:]) for r in rows)
    if packed:
        assert out.logits.shape[1] == n_targets                 # logits only where a target follows
    else:
        assert out.logits.shape[1] < batch["input_ids"].shape[1]
    assert got.item() == pytest.approx(want, abs=1e-5)
    with torch.no_grad():                                        # num_items_in_batch divides the sum instead
        half, _ = packing.target_loss(model, batch, num_items_in_batch=2 * n_targets)
    assert half.item() == pytest.approx(want / 2, abs=1e-5)


@pytest.mark.parametrize("packed", [True, False])
def test_label_objective_target_loss_equals_label_loss(model, tok, packed):
    recs = make_pairs(3, seed=5)
    recs[0]["prompt"] += " Think it through." * 3                # unequal lengths: the padded batch has pads
    built, _, _ = objectives.build_dataset(tok, recs, "label", 512)
    ab = objectives.answer_token_ids(tok)
    padded = objectives.Collator(tok.pad_token_id)(built)
    batch = packing.PackedCollator()(built) if packed else padded
    with torch.no_grad():
        logits = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
        want = objectives.label_loss(logits, padded["labels"], *ab, 0.1).item()
        got, out = packing.target_loss(model, batch, label_ids=ab, eps=0.1)
    verdict_positions = {len(r["input_ids"]) - 2 for r in built}  # padded rows share a position when equally long
    assert out.logits.shape[1] == (3 if packed else len(verdict_positions))
    assert got.item() == pytest.approx(want, abs=1e-5)


def test_trainer_packed_and_padded_learn_alike(tiny_model, tmp_path):
    """Same seed, same data order: the packed trainer's loss curve equals the padded one's."""
    data = write_pairs(tmp_path / "pairs.jsonl", make_pairs(8))
    curves = {}
    for pack in (True, False):
        cfg = recipe.Config(model=str(tiny_model))
        for k, v in {"batch_size": 4, "max_steps": 4, "lr": 1e-3, "logging_steps": 1, "save_steps": 100,
                     "warmup_ratio": 0.0, "packing": pack, "precision": "fp32"}.items():
            setattr(cfg.train, k, v)
        s = core.train(cfg, [data], tmp_path / f"out-{pack}", stage="pretrain")
        ts = json.loads((tmp_path / f"out-{pack}" / "training_summary.json").read_text())
        curves[pack] = [loss for _, loss in ts["loss_curve"]]
        assert s.metrics["packing"] is pack
        assert s.metrics["roofline_tokens_per_second"] > 0 and s.metrics["tokens_per_second"] > 0
        assert s.metrics["roofline_fraction"] == pytest.approx(
            s.metrics["tokens_per_second"] / s.metrics["roofline_tokens_per_second"], abs=2e-3)
    assert len(curves[True]) == 4
    assert curves[True] == pytest.approx(curves[False], abs=2e-3)
    # both count the same real tokens (padding excluded)
    assert json.loads((tmp_path / "out-True" / "training_summary.json").read_text())["tokens_seen"] == \
        json.loads((tmp_path / "out-False" / "training_summary.json").read_text())["tokens_seen"]


@pytest.mark.parametrize("caps,want", [({"amx_bf16": True, "avx2": True}, True),
                                       ({"avx512_bf16": True}, True),
                                       ({"avx2": True, "amx_bf16": False, "avx512_bf16": False}, False)])
def test_auto_precision_follows_native_bf16(monkeypatch, caps, want):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)
    hardware.cpu_native_bf16.cache_clear()
    try:
        assert hardware.auto_bf16(on_gpu=False) is want
        assert core.precision_flags("auto", on_gpu=False) == {"bf16": want}
        assert core.precision_flags("fp32", on_gpu=False) == {"bf16": False}
    finally:
        hardware.cpu_native_bf16.cache_clear()


def test_flops_per_token_counts_the_matmul_weights(model):
    n = sum(p.numel() for p in model.parameters())
    tied = model.config.tie_word_embeddings
    emb = model.get_input_embeddings().weight.numel()
    assert hardware.train_flops_per_token(model) == 6 * (n if tied else n - emb)


@pytest.mark.parametrize("forced,want", [("1", True), ("0", False)])
def test_native_bf16_can_be_forced_to_simulate_another_cpu(monkeypatch, forced, want):
    """GRAMR2_NATIVE_BF16 overrides the CPU probe (issue 27 item 0: a test can run as on an AMX runner)."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": not want, "avx512_bf16": not want})
    monkeypatch.setenv(hardware.FORCE_ENV, forced)
    hardware.cpu_native_bf16.cache_clear()
    try:
        assert core.precision_flags("auto", on_gpu=False) == {"bf16": want}
    finally:
        hardware.cpu_native_bf16.cache_clear()
