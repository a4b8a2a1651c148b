"""Issue 26 with a scripted judge (no model): masked-reward accounting in the hooks and /health, the async GRPO
hook (event loop free while judging; one request per group, overlapping on a real uvicorn), and the Online DPO
adapter (pairs, masked comparisons as ties). The real TRL trainers run in test_trl_async_dpo.py."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from scripted_engine import ScriptedEngine
from test_serve import SlowEngine, free_socket

from gramr2_cli import recipe, rlhf
from gramr2_cli.core.errors import GramrError
from gramr2_cli.server import serve

QUALITY = {"good": 2, "okay": 1, "bad": 0}


def decide(q, a, b, k):
    """Prefers the better first word; a response containing "long" is never judged (an unparseable reply)."""
    if "long" in a or "long" in b:
        return None, None
    return ("A", 0.9) if QUALITY[a.split()[0]] >= QUALITY[b.split()[0]] else ("B", 0.1)


LONG1 = "long long long answer"          # 21 characters
LONG2 = "long x"                         # 6
BATCH = {"prompts": ["p1", "p2", "p3", "p4"], "completions": ["good", LONG1, "bad", LONG2],
         "reference": ["okay"] * 4}


def local_hook(make, *sets, **kw):
    fn = make("unused-model", cfg=recipe.load(None, list(sets)), **kw)
    fn.client.engine = ScriptedEngine(decide)
    return fn


def test_health_counts_masked_rewards_and_their_lengths():
    with TestClient(serve.create_app(ScriptedEngine(decide), recipe.load(None, []))) as c:
        h = c.get("/health").json()
        assert (h["masked_rewards"], h["scored_rewards"], h["masked_chars_mean"]) == (0, 0, None)
        r = c.post("/score", json={"prompt": BATCH["prompts"], "response": BATCH["completions"],
                                   "reference": BATCH["reference"]}).json()
        assert r["rewards"] == pytest.approx([0.9, None, 0.1, None])
        c.post("/get_reward", json={"query": ["p5 good"], "prompts": ["p5"], "labels": ["bad"]})
        h = c.get("/health").json()
    assert h["masked_rewards"] == 2 and h["scored_rewards"] == 3
    assert h["masked_chars_mean"] == pytest.approx((21 + 6) / 2)
    assert h["scored_chars_mean"] == pytest.approx((4 + 3 + 4) / 3)          # good, bad, good
    assert h["in_flight"] == 0 and h["max_in_flight"] == 1


def test_trl_hook_reports_masking_per_call_and_through_log_metric():
    fn = local_hook(rlhf.make_trl_reward)
    logged: dict[str, list[float]] = {}
    out = fn(BATCH["prompts"], BATCH["completions"], reference=BATCH["reference"],
             log_metric=lambda k, v: logged.setdefault(k, []).append(v))
    assert out == pytest.approx([0.9, None, 0.1, None])
    assert logged["gramr2/masked"] == [2] and logged["gramr2/scored"] == [2]
    assert logged["gramr2/masked_chars"] == [13.5] and logged["gramr2/scored_chars"] == [3.5]
    assert logged["gramr2/judge_calls"] == [8] and logged["gramr2/failed_calls"] == [4]
    fn(["p"], ["good"], reference=["bad"], log_metric=lambda k, v: logged.setdefault(k, []).append(v))
    assert logged["gramr2/masked"] == [2, 0] and logged["gramr2/masked_chars"] == [13.5]   # none masked: not logged
    assert [h["masked"] for h in fn.history] == [2, 0] and fn.history[1]["masked_chars"] is None
    assert fn.history[1]["scored_chars"] == 4


def test_async_hook_judges_in_a_worker_thread():
    """The event loop keeps running while a local judge works (a synchronous judge would block it)."""
    fn = rlhf.make_trl_reward("unused-model", cfg=recipe.load(None, []), asynchronous=True)
    fn.client.engine = SlowEngine(decide, delay=0.3)
    assert inspect.iscoroutinefunction(fn)                   # what TRL checks (trl.trainer.utils.is_async_callable)
    ticks = []

    async def main():
        task = asyncio.ensure_future(fn(["p"], ["good"], reference=["bad"]))
        while not task.done():
            ticks.append(1)
            await asyncio.sleep(0.01)
        return task.result()
    assert asyncio.run(main()) == pytest.approx([0.9])
    assert len(ticks) >= 10                                  # ≥ 0.3 s of engine time spent off the loop
    assert fn.history[0]["judge_calls"] == 2


def test_async_hook_sends_groups_concurrently_to_a_server():
    """One /score request per group, all in flight at once: the server's max_in_flight is the group count and
    its micro-batcher puts every group's judge calls into one engine call."""
    import uvicorn
    eng = SlowEngine(decide, delay=0.2)
    app = serve.create_app(eng, recipe.load(None, ["serve.pairing=round-robin", "serve.max_wait_ms=1000"]))
    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on"))
    t = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.02)
        fn = rlhf.make_trl_reward(base, num_generations=2, asynchronous=True)
        out = asyncio.run(fn(["p", "p", "q", "q", "r", "r"], ["good", "bad", "bad", "okay", "okay", "good"]))
        h = httpx.get(base + "/health").json()
    finally:
        server.should_exit = True
        t.join(10)
    assert out == pytest.approx([0.9, 0.1, 0.1, 0.9, 0.1, 0.9])
    assert h["requests"] == 3 and h["max_in_flight"] == 3
    assert len(eng.calls) == 1 and h["largest_batch"] == 6             # 3 groups × 1 pair × 2 orders together
    # each /score reports its own judge calls, not the server-wide count that grew while the others ran
    assert fn.history[0]["judge_calls"] == 6 and fn.history[0]["masked"] == 0


def test_online_dpo_adapter_pairs_the_halves_and_ties_masked_comparisons():
    fn = local_hook(rlhf.make_online_dpo_reward, "serve.pairing=round-robin")
    # OnlineDPOTrainer's batch: first completions of p1, p2, then second completions of p1, p2
    out = fn(["p1", "p2", "p1", "p2"], ["good a", LONG1, "bad b", "okay c"])
    assert out == pytest.approx([0.9, 0.5, 0.1, 0.5])          # p2's comparison failed: a tie, never a None
    assert fn.history[0]["masked"] == 2 and fn.history[0]["masked_pairs"] == 1
    assert fn.history[0]["judge_calls"] == 4                   # one comparison per prompt, both orders
    eng = fn.client.engine
    assert {ScriptedEngine.parse(p)[1:] for c in eng.calls for p in c} == {
        ("good a", "bad b"), ("bad b", "good a"), (LONG1, "okay c"), ("okay c", LONG1)}
    with pytest.raises(GramrError, match="OnlineDPOTrainer's batch"):
        fn(["p1", "p2", "p2"], ["a", "b", "c"])


def test_online_dpo_one_sided_mask_takes_the_pair_value():
    """Pairing reference: one completion's judgment fails → it gets its pair's reward (a tie), not the 0 that
    OnlineDPOTrainer's nansum would make of a None (which would always lose)."""
    fn = local_hook(rlhf.make_online_dpo_reward)
    out = fn(["p1", "p1"], ["good", LONG2], reference=["okay", "okay"])
    assert out == pytest.approx([0.9, 0.9])
    assert fn.history[0]["masked"] == 1 and fn.history[0]["masked_pairs"] == 1


def test_log_callback_adds_the_numbers_to_the_trainer_log():
    from transformers import TrainerControl, TrainerState, TrainingArguments
    fn = local_hook(rlhf.make_online_dpo_reward, "serve.pairing=round-robin")
    cb = fn.log_callback()
    fn(["p1", "p2", "p1", "p2"], ["good a", LONG1, "bad b", "okay c"])
    fn(["p1", "p1"], ["good", "bad"])
    state = TrainerState()
    state.log_history.append({"loss": 1.0, "step": 2})
    logs = {"loss": 1.0}
    cb.on_log(TrainingArguments(output_dir="unused", report_to=[]), state, TrainerControl(), logs=logs)
    entry = state.log_history[-1]
    assert entry["gramr2/masked"] == 1 and entry["gramr2/judge_calls"] == 3        # (2 + 0) / 2, (4 + 2) / 2
    assert entry["gramr2/masked_chars"] == pytest.approx((21 + 6) / 2)              # only the call that masked
    assert logs["gramr2/masked_pairs"] == 0.5
    state.log_history.append({"loss": 0.5, "step": 3})
    cb.on_log(TrainingArguments(output_dir="unused", report_to=[]), state, TrainerControl(), logs={})
    assert "gramr2/masked" not in state.log_history[-1]          # nothing new since the last log
