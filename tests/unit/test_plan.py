"""`gramr2 plan` arithmetic, hand-checked: parameter counts, the Trainer's step formula, state memory under
ZeRO stages, FLOPs and GPU-hours, generation counts, warnings, and the CLI. No model is loaded."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from gramr2_cli import recipe
from gramr2_cli.cli import app
from gramr2_cli.core import plan_cost, prompts, records
from gramr2_cli.stages import plan
from gramr2_cli.train import objectives

LLAMA_8B = 8_030_261_248      # the published parameter count of Llama-3.1-8B
GIB = 2 ** 30


def test_param_counts_match_published_models():
    km = plan_cost.KNOWN_MODELS
    assert plan_cost.param_count(km["meta-llama/Llama-3.1-8B-Instruct"]) == LLAMA_8B
    assert plan_cost.param_count(km["meta-llama/Llama-3.2-3B-Instruct"]) == 3_212_749_824
    assert plan_cost.param_count(km["Qwen/Qwen3-14B"]) == 14_768_307_200
    assert plan_cost.param_count(km["embedded:smollm2-135m"]) == 134_515_008


def test_unknown_architecture_and_unknown_model_are_errors():
    with pytest.raises(plan.GramrError, match="model_type 'gpt2'"):
        plan_cost.param_count({"model_type": "gpt2"})
    with pytest.raises(plan.GramrError, match="not a local directory and not in the known-size table"):
        plan_cost.model_facts("someone/unknown-model")


def test_lora_parameters_by_hand():
    # r=16 on q,k,v,o of Llama-3.1-8B: per layer 16·(4096+4096) + 2·16·(4096+1024) + 16·(4096+4096) = 425,984
    assert plan_cost.lora_param_count(plan_cost.KNOWN_MODELS["meta-llama/Llama-3.1-8B-Instruct"], 16,
                                 ["q_proj", "k_proj", "v_proj", "o_proj"]) == 425_984 * 32


@pytest.mark.parametrize("n,bs,ga,world,epochs,max_steps,per_epoch,steps", [
    (100, 8, 2, 1, 3.0, -1, 7, 21),      # 13 micro-batches → ceil(13/2) = 7 per epoch
    (100, 8, 2, 4, 3.0, -1, 2, 6),       # 13 batches over 4 ranks → 4 each → 2 steps per epoch
    (100, 8, 2, 1, 1.5, -1, 7, 11),      # ceil(1.5 · 7)
    (100, 8, 1, 1, 3.0, 5, 13, 5),       # max_steps wins
])
def test_optimizer_steps_follow_the_trainer(n, bs, ga, world, epochs, max_steps, per_epoch, steps):
    s = plan_cost.optimizer_steps(n, bs, ga, world, epochs, max_steps)
    assert (s["steps_per_epoch"], s["steps"], s["global_batch"]) == (per_epoch, steps, bs * ga * world)


def test_tokens_processed_whole_and_partial_epochs():
    lengths = [10, 20, 30, 40]                        # 100 tokens per epoch
    whole = plan_cost.optimizer_steps(4, 2, 1, 1, 2.0, -1)
    assert plan_cost.tokens_processed(lengths, whole, 2, 1, 1) == (200, True)
    part = plan_cost.optimizer_steps(4, 2, 1, 1, 1.0, 3)  # 2 steps per epoch: one epoch + one batch of 2 at mean 25
    assert plan_cost.tokens_processed(lengths, part, 2, 1, 1) == (150, False)


def test_state_memory_under_each_zero_stage():
    n = LLAMA_8B
    assert plan_cost.state_memory(n, n, 8, "0")["total_gib"] == pytest.approx(16 * n / GIB)
    assert plan_cost.state_memory(n, n, 8, "1")["total_gib"] == pytest.approx((4 * n + 12 * n / 8) / GIB)
    assert plan_cost.state_memory(n, n, 8, "2")["total_gib"] == pytest.approx((2 * n + 14 * n / 8) / GIB)
    z3 = plan_cost.state_memory(n, n, 8, "3")
    assert z3 == plan_cost.state_memory(n, n, 8, "fsdp")
    assert z3["total_gib"] == pytest.approx(16 * n / 8 / GIB) == pytest.approx(14.957, abs=1e-3)
    lora = plan_cost.state_memory(n, 1000, 1, "0")     # frozen fp32 base + 16 bytes per trainable parameter
    assert lora["total_gib"] == pytest.approx((4 * (n - 1000) + 16 * 1000) / GIB)


def _long_pairs(n: int, chars: int) -> list[dict]:
    return [records.new_pair(f"question {i}", "a" * chars, "b" * chars, "A", "Feedback: x\n\nComparison: y\n\n"
                             "Conclusion: Response A is better.", source="test") for i in range(n)]


def test_8b_on_512_tokens_with_4k_token_data_warns_and_costs_by_hand():
    cfg = recipe.load(None, ["model=meta-llama/Llama-3.1-8B-Instruct", "train.max_length=512",
                             "train.batch_size=2", "train.grad_accum=2", "train.epochs=1"])
    recs = _long_pairs(3, 8000) + [records.new_pair("short", "yes", "no", "A", None, source="test")]
    p = plan.run(cfg, [], stage="pretrain", gpus=1, gpu="h100", zero="0", examples=None, recipe="x",
                 records=recs)
    tr = p["training"]
    assert (tr["used"], tr["skipped"]) == (1, {"too_long": 3})
    text = prompts.render(plan.CharTokenizer(), prompts.judge_messages("short", "yes", "no"))
    target = prompts.judgment_text(None, "A")
    assert tr["tokens"] == math.ceil((len(text) + len(target)) / 4) == tr["tokens_per_epoch"]
    assert tr["flops"] == 6 * LLAMA_8B * tr["tokens"]
    assert tr["gpu_hours"] == round(tr["flops"] / (989e12 * 0.4) / 3600, 3)
    assert p["warnings"] == [
        "token counts are estimates (characters/4, chat template left out): no local tokenizer for "
        "meta-llama/Llama-3.1-8B-Instruct",
        "3 of 4 examples exceed train.max_length 512 and will be skipped",
        "1 examples have no rationale and train the answer only",
        f"weights + gradients + optimizer state need {16 * LLAMA_8B / GIB:.1f} GiB per GPU, over the NVIDIA "
        "H100 SXM 80GB's 79.6 GiB: raise --gpus, use --zero 3 or LoRA"]


def test_char_estimate_uses_the_real_builders():
    rec = _long_pairs(1, 10)[0]
    c = plan.count_examples(None, [([rec], 1.0)], "reasoning", 4096, "gramr2-v1")
    built = objectives.build_reasoning(plan.CharTokenizer(), rec, "gramr2-v1")
    assert c["lengths"] == [math.ceil(len(built.input_ids) / 4)] and c["exact"] is False


def test_generation_counts_for_self_label_and_prove():
    cfg = recipe.load(None, ["model=meta-llama/Llama-3.2-3B-Instruct", "self_label.samples=4",
                             "self_label.orders=both", "generate.max_new_tokens=100", "prove.k=3",
                             "prove.max_new_tokens=50"])
    recs = _long_pairs(3, 20) + [records.new_pair("q", "x", "y", None, None, source="test")]
    sl = plan.generation("self-label", cfg, recs, None, 131072)
    assert (sl["prompts"], sl["samples"], sl["max_generated_tokens"]) == (8, 32, 3200)
    pv = plan.generation("prove", cfg, recs, None, 131072)
    assert (pv["prompts"], pv["samples"], pv["max_generated_tokens"], pv["scored_sequences"]) == (3, 9, 450, 18)
    tight = plan.generation("self-label", cfg, recs, None, 120)   # every prompt + 100 new tokens > 120
    assert tight["prompts_over_context"] == 8
    cfg.generate.verdict_only = True
    vo = plan.generation("evaluate", cfg, recs, None, 131072)
    assert (vo["prompts"], vo["samples"], vo["max_generated_tokens"]) == (4, 4, 0)   # evaluate.orders ab


def test_self_train_plans_every_iteration_as_an_upper_bound():
    cfg = recipe.load(None, ["model=meta-llama/Llama-3.2-3B-Instruct", "self_train.iterations=3",
                             "self_label.samples=2", "self_label.orders=ab", "train.max_length=100000"])
    unl = [records.new_pair(f"q{i}", "x", "y", None, None, source="test") for i in range(6)]
    p = plan.run(cfg, [], stage="self-train", gpus=8, records=unl)
    its = p["iterations"]
    assert [it["training"]["used"] for it in its] == [2, 4, 6]
    assert [it["generation"][0]["samples"] for it in its] == [4, 4, 4]
    assert p["total_gpu_hours"] == round(sum(it["training"]["gpu_hours"] for it in its), 3)


def test_infer_stage(tmp_path):
    for text, stage in [("self_train: {iterations: 3}\n", "self-train"), ("train: {objective: prover}\n",
                        "prover-train"), ("train: {lr: 1.0e-5}\n", "pretrain"), ("prove: {k: 4}\n", "prove"),
                        ("evaluate: {votes: 1}\n", "evaluate")]:
        (tmp_path / "r.yaml").write_text(text)
        assert plan.infer_stage(tmp_path / "r.yaml") == stage
    (tmp_path / "r.yaml").write_text("seed: 1\n")
    with pytest.raises(plan.GramrError, match="cannot tell which stage"):
        plan.infer_stage(tmp_path / "r.yaml")


def test_cli_json_and_one_line_errors(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _long_pairs(2, 100)))
    r = CliRunner().invoke(app, ["plan", "recipes/pretrain.yaml", str(data), "--model",
                                 "meta-llama/Llama-3.1-8B-Instruct", "--gpus", "8", "--zero", "3", "--json"])
    assert r.exit_code == 0, r.output
    p = json.loads(r.stdout)
    assert (p["stage"], p["model"]["params"], p["training"]["used"]) == ("pretrain", LLAMA_8B, 2)
    bad = CliRunner().invoke(app, ["plan", "recipes/pretrain.yaml", str(data), "--gpu", "v100"])
    assert bad.exit_code == 1 and "error: --gpu: unknown 'v100'; choose from a100, a100-40gb, h100, h200" in bad.output


def test_rationale_tokens_plans_pairs_as_prove_will_hand_them_over():
    cfg = recipe.load(None, ["model=meta-llama/Llama-3.1-8B-Instruct", "train.max_length=100000"])
    rec = records.new_pair("q", "x", "y", "A", None, source="test")
    bare = plan.run(cfg, [], stage="pretrain", records=[rec])["training"]
    p = plan.run(cfg, [], stage="pretrain", records=[rec], rationale_tokens=300)
    built = objectives.build_reasoning(plan.CharTokenizer(), dict(rec, rationale="x" * 1200), "gramr2-v1")
    assert p["training"]["tokens_per_epoch"] == math.ceil(len(built.input_ids) / 4)
    assert p["training"]["tokens_per_epoch"] - bare["tokens_per_epoch"] == 305   # ceil((1200 + 18 chars of <think> tags) / 4) more
    assert p["training"]["notes"] == {} and bare["notes"] == {"answer_only": 1}
    assert p["warnings"][-1] == "pairs without a rationale are planned with one of 300 tokens (--rationale-tokens)"


def test_examples_scales_a_sample():
    cfg = recipe.load(None, ["model=meta-llama/Llama-3.1-8B-Instruct", "train.max_length=100000",
                             "train.batch_size=1", "train.grad_accum=1", "self_label.samples=2"])
    sample = _long_pairs(2, 40)
    one = plan.run(cfg, [], stage="pretrain", records=sample, gpus=1)["training"]
    big = plan.run(cfg, [], stage="pretrain", records=sample, gpus=1, examples=10)
    assert (big["records"], big["training"]["used"], big["training"]["steps"]) == (10, 10, 10)
    assert big["training"]["tokens"] == 5 * one["tokens"]
    gen = plan.run(cfg, [], stage="self-label", records=sample, examples=10)["generation"][0]
    assert (gen["prompts"], gen["samples"]) == (10, 20)
    with pytest.raises(plan.GramrError, match="--examples N"):
        plan.run(cfg, [], stage="pretrain", records=sample, examples=0)
