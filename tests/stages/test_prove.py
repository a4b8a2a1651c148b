"""prove: Eq. 5 proof selection, reform into a rationale, skips, candidates, resume (scripted FakeEngine + tiny)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from gramr2_cli import recipe
from gramr2_cli.core import prompts, readers, records
from gramr2_cli.core.errors import GramrError
from gramr2_cli.engines import Generation
from gramr2_cli.stages import prove

SPECIFIC = ("Feedback: Response A says 7 + 5 = 12, which is right; Response B says 13.\n"
            "Comparison: 12 is the correct sum, 13 is off by one.\n"
            "Conclusion: Response A is better.")
GENERIC = ("Feedback: Both responses are fine.\n"
           "Comparison: Response A is better written.\n"
           "Conclusion: Response A is better.")
BROKEN = "Response A is better because it is good."          # no sections: dropped before scoring


class FakeProver:
    """Scripted prover: `proofs` per pair id (found in the prompt), log-probs per (context, text)."""

    def __init__(self, proofs: dict[str, list[str]], logp: dict[tuple[str, str], float]):
        self.tokenizer = SimpleNamespace(chat_template=None)   # prompts.render's plain "role: content" form
        self.proofs, self.logp = proofs, logp
        self.generate_calls, self.score_calls = [], []

    def generate(self, prompts_, *, n, temperature, max_new_tokens, seed, top_p=1.0, answer_token_probs=False):
        self.generate_calls.append({"prompts": prompts_, "n": n, "temperature": temperature,
                                        "max_new_tokens": max_new_tokens, "seed": seed})
        out = []
        for p in prompts_:
            key = next(k for k in self.proofs if k in p)
            out.append([Generation(t, 10, -1.0, -0.1) for t in self.proofs[key][:n]])
        return out

    def score(self, prompts_, continuations):
        self.score_calls.append(list(zip(prompts_, continuations)))
        uncond = prompts.render(self.tokenizer, prompts.unconditional_messages())
        return [self.logp[("uncond" if p == uncond else "cond", c)] for p, c in zip(prompts_, continuations)]


def pair(q: str, label: str | None = "A", **kw) -> dict:
    return records.new_pair(q, "It is 12.", "It is 13.", label=label, **kw)


def test_proof_score_is_eq5_by_hand():
    # Eq. 5: −log π(z|s,l) / log π(z). Specific: −(−20)/(−80) = −0.25; generic: −(−15)/(−18) = −0.8333…
    assert prove.proof_score(-20.0, -80.0) == pytest.approx(-0.25)
    assert prove.proof_score(-15.0, -18.0) == pytest.approx(-15 / 18)
    assert prove.proof_score(-20.0, -80.0) > prove.proof_score(-15.0, -18.0)
    assert prove.proof_score(-3.0, 0.0) == float("-inf")


def test_eq5_ranks_specific_proof_above_generic_one(tmp_path):
    # The generic proof is MORE likely given (s, l) (−15 > −20): plain likelihood would keep it. Eq. 5 divides
    # by its likelihood on its own (−18: boilerplate is likely anywhere) and keeps the specific proof.
    rec = pair("What is 7 + 5?")
    eng = FakeProver({"7 + 5": [GENERIC, BROKEN, SPECIFIC]},
                     {("cond", GENERIC): -15.0, ("uncond", GENERIC): -18.0,
                      ("cond", SPECIFIC): -20.0, ("uncond", SPECIFIC): -80.0})
    cfg = recipe.load(None, ["prove.k=3", "prove.keep_candidates=true", "prove.temperature=0.7",
                             "prove.max_new_tokens=99", "seed=5"])
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps(rec) + "\n")
    s = prove.run(cfg, [inp], tmp_path / "out", engine=eng, progress=False)
    (out,) = readers.read_all([tmp_path / "out"])
    assert out["rationale"] == prompts.proof_to_rationale(SPECIFIC)
    assert out["rationale"].startswith("Feedback: Response A says 7 + 5 = 12")
    assert "\n\nComparison: 12 is the correct sum" in out["rationale"]
    info = out["meta"]["proof"]
    assert info["index"] == 2 and info["k"] == 3 and info["parseable"] == 2
    assert info["score"] == pytest.approx(-0.25)
    assert (info["logp_cond"], info["logp_uncond"]) == (-20.0, -80.0)
    cands = info["candidates"]
    assert [c["parseable"] for c in cands] == [True, False, True]
    assert cands[0]["score"] == pytest.approx(-0.8333, abs=1e-3)
    assert "score" not in cands[1] and "lacks section" in cands[1]["problem"]
    assert s.counts["out"] == 1 and s.counts["candidates"] == 3 and s.counts["candidates_unparseable"] == 1
    # the sampling settings come from the prove section; the broken proof was never scored
    (call,) = eng.generate_calls
    assert (call["n"], call["temperature"], call["max_new_tokens"], call["seed"]) == (3, 0.7, 99, 5)
    assert "Response A is better. Prove it" in call["prompts"][0]
    assert {c for _, c in eng.score_calls[0]} == {GENERIC, SPECIFIC}
    # log π(z) is scored under the EMPTY context: the system turn and an empty user turn, no pair, no label
    uncond = [p for p, _ in eng.score_calls[0] if "7 + 5" not in p]
    assert uncond and all(p == "system: " + prompts.unconditional_messages()[0]["content"] + "\nuser: \nassistant: "
                          for p in uncond)


def test_skips_unlabeled_and_unprovable_pairs_with_reasons(tmp_path):
    recs = [pair("q1 ok", rationale="old gold rationale"), pair("q2 broken", label="B"), pair("q3 nolabel", None)]
    eng = FakeProver({"q1 ok": [SPECIFIC], "q2 broken": [BROKEN, BROKEN]},
                     {("cond", SPECIFIC): -5.0, ("uncond", SPECIFIC): -50.0})
    cfg = recipe.load(None, ["prove.k=2"])
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in recs))
    s = prove.run(cfg, [inp], tmp_path / "out", engine=eng, progress=False)
    kept = readers.read_all([tmp_path / "out"])
    skipped = {r["id"]: r["meta"]["reasons"] for r in readers.read_all([tmp_path / "out" / "skipped"])}
    assert [r["id"] for r in kept] == [recs[0]["id"]]
    assert kept[0]["meta"]["proof"]["replaced_rationale"] == "old gold rationale"   # nothing is lost
    assert "candidates" not in kept[0]["meta"]["proof"]
    assert skipped == {recs[1]["id"]: ["no_parseable_proof"], recs[2]["id"]: ["no_label"]}
    assert s.counts["rejected:no_label"] == 1 and s.counts["rejected:no_parseable_proof"] == 1
    # the unlabeled pair never reached the prover
    assert all("q3 nolabel" not in p for p in eng.generate_calls[0]["prompts"])


def test_resume_regenerates_only_unfinished_batches(tmp_path):
    recs = [pair(f"q{i} ok") for i in range(5)]
    proofs = {f"q{i} ok": [SPECIFIC] for i in range(5)}
    logp = {("cond", SPECIFIC): -5.0, ("uncond", SPECIFIC): -50.0}
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in recs))
    cfg = recipe.load(None, ["prove.k=1", "generate.batch_size=2"])
    prove.run(cfg, [inp], tmp_path / "full", engine=FakeProver(proofs, logp), progress=False)
    # an interrupted run: batch 0 written, batch 1 half written (a kill between its two lines)
    part = readers.read_all([tmp_path / "full"])
    out = tmp_path / "resumed"
    prove.run(cfg, [inp], out, engine=FakeProver(proofs, logp), progress=False)
    lines = (out / "part-00000-of-00001.jsonl").read_text().splitlines()
    (out / "part-00000-of-00001.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    man = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**man, "done": False}))
    eng = FakeProver(proofs, logp)
    s = prove.run(cfg, [inp], out, engine=eng, progress=False)
    assert [len(c["prompts"]) for c in eng.generate_calls] == [2, 1]     # batch 1 whole again, then batch 2
    got = readers.read_all([out])
    assert [r["id"] for r in got] == [r["id"] for r in part]
    assert [r["rationale"] for r in got] == [r["rationale"] for r in part]
    assert s.counts["resumed"] == 3 and s.counts["out"] == 2


def test_needs_a_prover(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps(pair("q")) + "\n")
    with pytest.raises(GramrError, match="prover"):
        prove.run(recipe.load(), [inp], tmp_path / "out", progress=False)


def test_tiny_model_scores_are_the_engines_scores(tmp_path, tiny_model):
    """Integration: the real hf engine and chat template; generation is scripted (a random model writes no
    sections), scoring is real. meta.proof holds exactly engine.score of the proof in both contexts."""
    from gramr2_cli.engines import load_engine

    cfg = recipe.load(None, ["generate.engine=hf", f"prove.prover={tiny_model}", "prove.k=2"])
    real = load_engine(str(tiny_model), cfg.generate, 0)

    class Scripted:
        tokenizer = real.tokenizer
        score = staticmethod(real.score)

        def generate(self, prompts_, **kw):
            return [[Generation(GENERIC, 1, 0.0, 0.0), Generation(SPECIFIC, 1, 0.0, 0.0)] for _ in prompts_]

    rec = pair("What is 7 + 5?")
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps(rec) + "\n")
    prove.run(cfg, [inp], tmp_path / "out", engine=Scripted(), progress=False)
    (out,) = readers.read_all([tmp_path / "out"])
    cond, uncond = prove.prover_prompts(real.tokenizer, rec)
    assert "<|im_start|>system" in cond and "What is 7 + 5?" in cond and "7 + 5" not in uncond
    exp = {t: prove.proof_score(*real.score([cond, uncond], [t, t])) for t in (GENERIC, SPECIFIC)}
    best = max(exp, key=exp.get)
    assert out["rationale"] == prompts.proof_to_rationale(best)
    assert out["meta"]["proof"]["score"] == pytest.approx(exp[best], rel=1e-5)
    assert out["meta"]["proof"]["logp_cond"] < 0 and out["meta"]["proof"]["logp_uncond"] < 0


def test_stdout_carries_proved_pairs_only(tmp_path, capsys):
    recs = [pair("q1 ok"), pair("q2 nolabel", None)]
    eng = FakeProver({"q1 ok": [SPECIFIC]}, {("cond", SPECIFIC): -5.0, ("uncond", SPECIFIC): -50.0})
    s = prove.run(recipe.load(None, ["prove.k=1"]), [write_jsonl(tmp_path, recs)], "-", engine=eng, progress=False)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in lines] == [recs[0]["id"]] and lines[0]["rationale"].startswith("Feedback: Response A")
    assert s.skipped == {"no_label": 1}


def write_jsonl(tmp_path, recs):
    p = tmp_path / "in.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return p


CONTRA = ("Feedback: Response A says 3.93. Response B says 3.46.\n"
          "Comparison: 3.46 vs 3.93: the smaller is 3.93. Response B says 3.46.\n"
          "Conclusion: Response B is better.")
TRUE = CONTRA.replace("the smaller is 3.93", "the smaller is 3.46")
MISQUOTE = TRUE.replace("Response A says 3.93", "Response A says 3.46")


def decimal_pair() -> dict:
    return records.new_pair("Which is smaller: 3.93 or 3.46?", "3.93 is smaller.", "3.46 is smaller.", label="B")


def test_proofs_that_contradict_their_pair_are_dropped_before_eq5(tmp_path):
    # By Eq. 5 alone the contradictory proof wins (−1/−100 > −5/−50); the claim check drops it unscored.
    logp = {("cond", CONTRA): -1.0, ("uncond", CONTRA): -100.0, ("cond", TRUE): -5.0, ("uncond", TRUE): -50.0,
            ("cond", MISQUOTE): -1.0, ("uncond", MISQUOTE): -100.0}
    inp = write_jsonl(tmp_path, [decimal_pair()])
    eng = FakeProver({"3.93 or 3.46": [CONTRA, MISQUOTE, TRUE]}, logp)
    cfg = recipe.load_recipe(None, ["prove.k=3", "prove.keep_candidates=true"])
    s = prove.run(cfg, [inp], tmp_path / "checked", engine=eng, progress=False)
    (out,) = readers.read_all([tmp_path / "checked"])
    assert out["rationale"] == prompts.proof_to_rationale(TRUE)
    info = out["meta"]["proof"]
    assert (info["k"], info["parseable"], info["consistent"], info["index"]) == (3, 3, 1, 2)
    assert [c["problem"] for c in info["candidates"]] == ["check_ends_in_another_claim", "misquotes_A", None]
    assert [c.get("consistent", True) for c in info["candidates"]] == [False, False, True]
    assert {c for _, c in eng.score_calls[0]} == {TRUE}
    assert s.counts["candidates_inconsistent"] == 2 and s.counts["candidates_unparseable"] == 0
    # without the check, Eq. 5 keeps the contradiction (the paper's rule alone)
    off = recipe.load_recipe(None, ["prove.k=3", "prove.check_claims=false"])
    prove.run(off, [inp], tmp_path / "unchecked", engine=FakeProver({"3.93 or 3.46": [CONTRA, MISQUOTE, TRUE]}, logp),
              progress=False)
    (raw,) = readers.read_all([tmp_path / "unchecked"])
    assert raw["rationale"] == prompts.proof_to_rationale(CONTRA)


def test_a_pair_without_a_consistent_proof_is_skipped_with_its_reason(tmp_path):
    inp = write_jsonl(tmp_path, [decimal_pair()])
    eng = FakeProver({"3.93 or 3.46": [CONTRA, CONTRA]}, {})
    s = prove.run(recipe.load_recipe(None, ["prove.k=2"]), [inp], tmp_path / "out", engine=eng, progress=False)
    assert readers.read_all([tmp_path / "out"]) == []
    (skipped,) = readers.read_all([tmp_path / "out" / "skipped"])
    assert skipped["meta"]["reasons"] == ["no_consistent_proof"]
    assert s.counts["rejected:no_consistent_proof"] == 1 and eng.score_calls == []


class SampledLogprobs(FakeProver):
    """A prover whose generations carry log π(z|s,l) (`body_logprob`), as the vllm and hf engines' do."""

    def generate(self, prompts_, **kw):
        gens = super().generate(prompts_, **kw)
        return [[Generation(g.text, 10, -9.0, -0.9, body_logprob=self.logp[("cond", g.text)]) for g in gs]
                for gs in gens]


def test_eq5_numerator_comes_from_sampling_and_each_proof_is_scored_once(tmp_path):
    logp = {("cond", GENERIC): -15.0, ("uncond", GENERIC): -18.0, ("cond", SPECIFIC): -20.0,
            ("uncond", SPECIFIC): -80.0}
    eng = SampledLogprobs({"7 + 5": [GENERIC, SPECIFIC, GENERIC]}, logp)
    s = prove.run(recipe.load_recipe(None, ["prove.k=3"]), [write_jsonl(tmp_path, [pair("What is 7 + 5?")])],
                  tmp_path / "out", engine=eng, progress=False)
    (out,) = readers.read_all([tmp_path / "out"])
    assert out["rationale"] == prompts.proof_to_rationale(SPECIFIC)
    assert (out["meta"]["proof"]["logp_cond"], out["meta"]["proof"]["logp_uncond"]) == (-20.0, -80.0)
    # one scoring pass, only log π(z) under the empty context, and the repeated GENERIC proof once
    (call,) = eng.score_calls
    uncond = prompts.render(eng.tokenizer, prompts.unconditional_messages())
    assert sorted(call) == sorted([(uncond, GENERIC), (uncond, SPECIFIC)])
    assert s.counts["out"] == 1


def test_a_pair_in_both_orders_is_proved_in_both_or_skipped_in_both(tmp_path):
    # the B-order twin proves; the A-order one (responses swapped) only gets contradictions: both are skipped,
    # so the proved set keeps no one-sided order of any pair. A lone pair is proved as before.
    twin_b = decimal_pair()
    twin_a = records.new_pair(twin_b["prompt"], twin_b["response_b"], twin_b["response_a"], label="A")
    contra_a = ("Feedback: Response A says 3.46. Response B says 3.93.\n"
                "Comparison: 3.46 vs 3.93: the smaller is 3.93. Response A says 3.46.\n"
                "Conclusion: Response A is better.")
    lone = pair("What is 7 + 5?")
    logp = {("cond", TRUE): -5.0, ("uncond", TRUE): -50.0, ("cond", SPECIFIC): -5.0, ("uncond", SPECIFIC): -50.0}

    class ByOrder(FakeProver):
        def generate(self, prompts_, **kw):
            self.generate_calls.append(prompts_)
            return [[Generation(SPECIFIC if "7 + 5" in p else TRUE if "Response B is better" in p else contra_a,
                                10, -1.0, -0.1)] for p in prompts_]

    inp = write_jsonl(tmp_path, [twin_b, lone, twin_a])
    s = prove.run(recipe.load_recipe(None, ["prove.k=1", "generate.batch_size=1"]), [inp], tmp_path / "out",
                  engine=ByOrder({}, logp), progress=False)
    assert [r["id"] for r in readers.read_all([tmp_path / "out"])] == [lone["id"]]
    skipped = {r["id"]: r["meta"]["reasons"] for r in readers.read_all([tmp_path / "out" / "skipped"])}
    assert skipped == {twin_a["id"]: ["no_consistent_proof"], twin_b["id"]: ["twin_not_proved"]}
    assert s.counts["rejected:twin_not_proved"] == 1
    off = recipe.load_recipe(None, ["prove.k=1", "generate.batch_size=1", "prove.twins_together=false"])
    prove.run(off, [inp], tmp_path / "each", engine=ByOrder({}, logp), progress=False)
    assert {r["id"] for r in readers.read_all([tmp_path / "each"])} == {lone["id"], twin_b["id"]}
