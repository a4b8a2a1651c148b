"""Trainer core and objectives (DESIGN §5): exact masks, the ε conversion, skips, loss going down, LoRA, refusals."""

from __future__ import annotations

import json
import math

import pytest
import torch
from train_helpers import make_pairs, write_pairs

from gramr2_cli import recipe
from gramr2_cli.core import hardware, models, prompts, readers, shards
from gramr2_cli.core.errors import GramrError
from gramr2_cli.stages import training
from gramr2_cli.train import core, objectives

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tok(tiny_model):
    return models.load_tokenizer(str(tiny_model))


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def _cfg(tiny_model, **train) -> recipe.Config:
    """A tiny training config, pinned to fp32: `precision: auto` is bf16 on a CPU with native bf16 (issue 27
    item 0), and these tests compare arithmetic at fp32 tolerances."""
    cfg = recipe.Config(model=str(tiny_model))
    defaults = {"batch_size": 4, "max_steps": 6, "lr": 1e-3, "logging_steps": 1, "save_steps": 100,
                "warmup_ratio": 0.0, "max_length": 256, "precision": "fp32"}
    for k, v in {**defaults, **train}.items():
        setattr(cfg.train, k, v)
    return cfg


# ---------------------------------------------------------------- masks, built once, exact

def test_reasoning_masks_prompt_exactly(tok):
    rec = make_pairs(1)[0]
    b = objectives.build_reasoning(tok, rec, "gramr2-v1")
    prompt = prompts.render(tok, prompts.judge_messages(rec["prompt"], rec["response_a"], rec["response_b"]))
    target = prompts.judgment_text(rec["rationale"], rec["label"]) + "<|im_end|>"
    p_ids = _ids(tok, prompt)
    assert b.input_ids == _ids(tok, prompt + target)
    assert b.labels == [-100] * len(p_ids) + b.input_ids[len(p_ids):]
    assert tok.decode([t for t in b.labels if t != -100]) == target
    assert b.note is None


def test_reasoning_without_rationale_trains_answer_only(tok):
    rec = make_pairs(2, rationale_every=2)[1]
    assert rec["rationale"] is None
    b = objectives.build_reasoning(tok, rec, "gramr2-v1")
    assert tok.decode([t for t in b.labels if t != -100]) == f"<answer>\n{rec['label']}\n</answer><|im_end|>"
    assert b.note == "answer_only"


def test_prover_target_is_the_proof(tok):
    rec = make_pairs(1)[0]
    b = objectives.build_prover(tok, rec, "gramr2-v1")
    msgs = prompts.prover_messages(rec["prompt"], rec["response_a"], rec["response_b"], rec["label"])
    n_prompt = len(_ids(tok, prompts.render(tok, msgs)))
    assert b.labels[:n_prompt] == [-100] * n_prompt
    assert tok.decode(b.labels[n_prompt:]) == prompts.rationale_to_proof(rec["rationale"]) + "<|im_end|>"
    assert f"Response {rec['label']} is better" in tok.decode(b.input_ids[:n_prompt])


def test_label_objective_supervises_one_verdict_token(tok):
    a_id, b_id = objectives.answer_token_ids(tok)
    for rec in make_pairs(4):
        b = objectives.build_label(tok, rec, "gramr2-v1")
        assert b.labels[:-1] == [-100] * (len(b.labels) - 1)
        assert b.labels[-1] == {"A": a_id, "B": b_id}[rec["label"]]
        assert tok.decode(b.input_ids[:-1]).endswith("<answer>\n")


def test_pairgen_target_is_both_responses(tok):
    rec = make_pairs(1)[0] | {"label": None}
    b = objectives.build_pairgen(tok, rec, "gramr2-v1")
    target = f"[Response A]\n{rec['response_a']}\n[Response B]\n{rec['response_b']}<|im_end|>"
    assert tok.decode([t for t in b.labels if t != -100]) == target
    assert b.labels.count(-100) == len(_ids(tok, prompts.render(tok, [{"role": "user", "content": rec["prompt"]}])))


def test_prompt_not_a_prefix_raises(tok):
    with pytest.raises(GramrError, match="not a prefix"):
        objectives.tokenize_pair(tok, "Hello wor", "ld")


def test_build_dataset_skips_and_counts(tok):
    recs = make_pairs(6, rationale_every=2)                     # 3 with rationale, 3 without
    rows, skipped, notes = objectives.build_dataset(tok, recs, "prover", max_length=4096)
    assert len(rows) == 3 and skipped == {"no_rationale": 3}
    lengths = sorted(len(objectives.build_reasoning(tok, r, "gramr2-v1").input_ids) for r in recs)
    cut = lengths[3]                                           # keep examples of length <= cut
    rows, skipped, notes = objectives.build_dataset(tok, recs, "reasoning", max_length=cut)
    assert len(rows) == sum(n <= cut for n in lengths) and skipped["too_long"] == sum(n > cut for n in lengths)
    assert all(len(r["input_ids"]) <= cut for r in rows)       # skipped, never truncated
    assert notes["answer_only"] == sum(1 for r in rows if r["id"] in {x["id"] for x in recs if not x["rationale"]})


def test_collator_only_pads(tok):
    rows = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    batch = objectives.Collator(pad_id=2)(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 2, 2]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


# ---------------------------------------------------------------- the paper's ε

def test_label_smoothing_matches_hand_computation():
    eps, a_id, b_id, V = 0.1, 3, 7, 10
    logits = torch.zeros(2, 3, V)
    logits[0, 1, a_id], logits[0, 1, b_id] = 2.0, 0.5          # row 0: verdict predicted at position 1
    logits[1, 1, a_id], logits[1, 1, b_id] = -1.0, 1.0
    labels = torch.tensor([[-100, -100, a_id], [-100, -100, b_id]])
    got = objectives.label_loss(logits, labels, a_id, b_id, eps).item()

    def ce(z_gold, z_other):            # targets (1-ε) on the gold class, ε on the other (the paper's ε)
        lse = math.log(math.exp(z_gold) + math.exp(z_other))
        return -((1 - eps) * (z_gold - lse) + eps * (z_other - lse))
    want = (ce(2.0, 0.5) + ce(1.0, -1.0)) / 2
    assert got == pytest.approx(want, abs=1e-6)
    assert objectives.torch_label_smoothing(eps) == pytest.approx(0.2)


# ---------------------------------------------------------------- training

def _mean_loss(model_dir, rows, objective, tok):
    """Mean objective loss of a saved model over `rows` (what the training loss measures)."""
    m = models.load_model(str(model_dir), device="cpu")
    batch = objectives.Collator(tok.pad_token_id)(rows)
    with torch.no_grad():
        if objective == "label":
            out = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            return objectives.label_loss(out.logits, batch["labels"], *objectives.answer_token_ids(tok), 0.0).item()
        return m(**batch).loss.item()


@pytest.mark.parametrize("objective,steps", [("reasoning", 6), ("prover", 6), ("label", 12), ("pairgen", 6)])
def test_each_objective_lowers_its_loss(tiny_model, tmp_path, tok, objective, steps):
    recs = make_pairs(8)
    data = write_pairs(tmp_path / "pairs.jsonl", recs)
    rows, _, _ = objectives.build_dataset(tok, recs, objective, 256)
    before = _mean_loss(tiny_model, rows, objective, tok)
    cfg = _cfg(tiny_model, objective=objective, max_steps=steps, lr=3e-3 if objective == "label" else 1e-3)
    s = core.train(cfg, [data], tmp_path / "out", stage="pretrain")
    after = _mean_loss(tmp_path / "out", rows, objective, tok)
    assert after < before - (0.05 if objective == "label" else 1.0), (before, after)
    ts = json.loads((tmp_path / "out" / "training_summary.json").read_text())
    assert ts["steps"] == steps and ts["examples_used"] == 8 and len(ts["loss_curve"]) == steps
    assert s.counts["examples"] == 8 and shards.is_done(tmp_path / "out")
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_over_long_examples_are_skipped_in_a_run(tiny_model, tmp_path, tok):
    recs = make_pairs(6)
    recs += [r | {"id": f"long{i}", "response_a": r["response_a"] + " really" * 40} for i, r in enumerate(recs[:2])]
    lengths = [len(objectives.build_reasoning(tok, r, "gramr2-v1").input_ids) for r in recs]
    cut = sorted(lengths)[5]
    assert sum(n > cut for n in lengths) == 2
    data = write_pairs(tmp_path / "pairs.jsonl", recs)
    s = core.train(_cfg(tiny_model, max_steps=1, max_length=cut), [data], tmp_path / "out", stage="pretrain")
    assert s.skipped == {"too_long": sum(n > cut for n in lengths)}
    assert s.counts["examples"] == sum(n <= cut for n in lengths) and s.counts["records"] == 8


def test_no_usable_example_is_an_error(tiny_model, tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", make_pairs(3))
    with pytest.raises(GramrError, match="no usable training example"):
        core.train(_cfg(tiny_model, max_length=10), [data], tmp_path / "out", stage="pretrain")


def test_finished_output_is_refused_and_unfinished_hints_resume(tiny_model, tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", make_pairs(4))
    out = tmp_path / "out"
    core.train(_cfg(tiny_model, max_steps=1), [data], out, stage="pretrain")
    with pytest.raises(GramrError, match="finished 'pretrain' model"):
        core.train(_cfg(tiny_model, max_steps=1), [data], out, stage="pretrain")
    # simulate a killed run: manifest not done + a complete checkpoint
    man = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(man | {"done": False}))
    (out / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (out / "checkpoints" / "checkpoint-1" / "trainer_state.json").write_text("{}")
    with pytest.raises(GramrError) as e:
        core.train(_cfg(tiny_model, max_steps=1), [data], out, stage="pretrain")
    assert "--resume" in e.value.hint
    with pytest.raises(GramrError, match="different stage/config"):
        core.train(_cfg(tiny_model, max_steps=2), [data], out, stage="pretrain", resume=True)


def test_stage_rejects_foreign_objective(tiny_model, tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", make_pairs(2))
    with pytest.raises(GramrError, match="choose from reasoning, label"):
        training.adapt(_cfg(tiny_model, objective="pairgen"), [data], tmp_path / "out")


def test_lora_saves_merges_and_reloads(tiny_model, tmp_path, tok):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    data = write_pairs(tmp_path / "pairs.jsonl", make_pairs(8))
    cfg = _cfg(tiny_model, max_steps=4, merge_lora=True)
    cfg.train.lora.enabled = True
    cfg.train.lora.dropout = 0.0
    s = training.adapt(cfg, [data], tmp_path / "out")
    assert s.metrics["merged_lora"] is True
    out = tmp_path / "out"
    merged = models.load_model(str(out), device="cpu")          # a plain HF dir, what every engine loads
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, str(out / "adapter")).eval()
    ids = torch.tensor([_ids(tok, "Which is larger, 3.1 or 2.9? <answer>\nA")])
    with torch.no_grad():
        a, b = merged(ids).logits, peft_model(ids).logits
        plain = models.load_model(str(tiny_model), device="cpu")(ids).logits
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(a, plain, atol=1e-3)              # the adapter did change the model
    assert (out / "chat_template.jinja").exists() or "chat_template" in (out / "tokenizer_config.json").read_text()


@pytest.mark.parametrize("native_bf16", ["0", "1"])
@pytest.mark.parametrize("objective", ["reasoning", "label"])
def test_grad_accum_equals_the_big_batch(tiny_model, tmp_path, objective, native_bf16, monkeypatch, request):
    """The gradient of one batch of 4 == that of 2 x 2 accumulated (token-mean for SFT, row-mean for label).
    (Compared before the optimizer: Adam's first step is ~lr·sign(g), which amplifies rounding noise.)
    Run as on an AVX2 runner and as on one with native bf16 (issue 27 item 0): the fp32 pin holds on both."""
    from transformers import TrainerCallback

    monkeypatch.setenv(hardware.FORCE_ENV, native_bf16)
    hardware.cpu_native_bf16.cache_clear()
    request.addfinalizer(hardware.cpu_native_bf16.cache_clear)     # after monkeypatch's env is restored

    class Grads(TrainerCallback):
        def __init__(self):
            self.grads = None

        def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
            self.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}

    data = write_pairs(tmp_path / "pairs.jsonl", make_pairs(4))
    grads = {}
    for name, bs, ga in [("big", 4, 1), ("accum", 2, 2)]:
        cb = Grads()
        cfg = _cfg(tiny_model, objective=objective, max_steps=1, batch_size=bs, grad_accum=ga)
        s = core.train(cfg, [data], tmp_path / name, stage="pretrain", callbacks=[cb])
        assert s.metrics["precision"] == "fp32" and hardware.auto_bf16(on_gpu=False) is (native_bf16 == "1")
        grads[name] = cb.grads
    assert grads["big"].keys() == grads["accum"].keys() and len(grads["big"]) > 10
    for n, g in grads["big"].items():
        assert g.abs().sum() > 0
        assert torch.allclose(g, grads["accum"][n], rtol=1e-4, atol=1e-7), n


def test_bf16_autocast_on_cpu(tiny_model, tmp_path, tok):
    # answer-only targets (no rationale), 4 steps of 2: the output layer runs at target positions only, and bf16
    # matmuls are emulated on CPUs without native bf16 (~25x slower): 10 target tokens per example, not ~60
    recs = [r | {"rationale": None} for r in make_pairs(8)]
    data = write_pairs(tmp_path / "pairs.jsonl", recs)
    rows, _, _ = objectives.build_dataset(tok, recs, "reasoning", 256)
    before = _mean_loss(tiny_model, rows, "reasoning", tok)
    s = core.train(_cfg(tiny_model, precision="bf16", batch_size=2, max_steps=4), [data], tmp_path / "out",
                   stage="pretrain")
    assert s.metrics["precision"] == "bf16" and s.metrics["steps"] == 4
    assert _mean_loss(tmp_path / "out", rows, "reasoning", tok) < before - 1.0
    assert json.loads((tmp_path / "out" / "config.json").read_text()).get("dtype") in ("float32", None)


def test_synth_pairs_build_for_every_objective(tiny_pairs, tok):
    recs = readers.read_all([tiny_pairs])
    for objective in objectives.OBJECTIVES:
        rows, skipped, notes = objectives.build_dataset(tok, recs, objective, 512)
        assert len(rows) == len(recs) and not skipped and not notes, objective
        assert [r["id"] for r in rows] == [r["id"] for r in recs]


@pytest.mark.slow
def test_embedded_model_reasoning_sft_lowers_loss(embedded_model, tmp_path, tiny_pairs):
    """The real 135M model: 3 steps of Eq. 2 SFT on 4 synthetic pairs lower their loss; the output reloads."""
    tok = models.load_tokenizer(str(embedded_model))
    recs = readers.read_all([tiny_pairs])[:4]
    data = write_pairs(tmp_path / "pairs.jsonl", recs)
    rows, _, _ = objectives.build_dataset(tok, recs, "reasoning", 512)
    before = _mean_loss(embedded_model, rows, "reasoning", tok)
    cfg = _cfg(embedded_model, max_steps=3, batch_size=4, lr=1e-4)
    s = core.train(cfg, [data], tmp_path / "out", stage="pretrain")
    assert _mean_loss(tmp_path / "out", rows, "reasoning", tok) < before
    assert s.metrics["steps"] == 3 and s.metrics["tokens_per_second"] > 0


def test_unlabeled_record_is_skipped_and_counted_not_fatal(tiny_model, tmp_path):
    """Issue 17 item 5: one record with a null label is skipped as `no_label`, training goes on."""
    recs = make_pairs(4)
    recs[1] = recs[1] | {"label": None}
    data = write_pairs(tmp_path / "pairs.jsonl", recs)
    s = core.train(_cfg(tiny_model, max_steps=1), [data], tmp_path / "out", stage="pretrain")
    assert s.skipped == {"no_label": 1}
    assert s.counts["examples"] == 3 and s.counts["records"] == 4


def test_trainable_layers_trains_only_the_top_blocks(tiny_model, tmp_path):
    from safetensors.torch import load_file

    data = write_pairs(tmp_path / "pairs.jsonl", make_pairs(8))
    s = core.train(_cfg(tiny_model, max_steps=2, trainable_layers=1, precision="fp32"), [data], tmp_path / "out",
                   stage="pretrain")
    assert s.metrics["steps"] == 2
    before, after = load_file(str(tiny_model / "model.safetensors")), load_file(str(tmp_path / "out" /
                                                                                "model.safetensors"))
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and all(n.startswith(("model.layers.1.", "model.norm.")) for n in changed), sorted(changed)
    assert any(n.startswith("model.layers.1.") for n in changed)
    assert "model.embed_tokens.weight" not in changed


def test_trainable_layers_is_checked(tiny_model, tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", make_pairs(4))
    with pytest.raises(GramrError, match="3 asked, the model has 2 blocks"):
        core.train(_cfg(tiny_model, trainable_layers=3), [data], tmp_path / "out", stage="pretrain")
    cfg = _cfg(tiny_model, trainable_layers=1)
    cfg.train.lora.enabled = True
    assert any("not both" in p for p in cfg.train.check())
