"""Long inputs and cut-off rationales: `generate.truncate` (skip | middle | end) trims responses to fit the
context and counts them; a sample that hits max_new_tokens without a verdict is `truncated`, not unparseable,
and `generate.retry_truncated_tokens` generates it once more with a larger budget (scripted engines and hf)."""

from __future__ import annotations

import json

import pytest
from scripted_engine import ScriptedEngine, reply

from gramr2_cli import recipe
from gramr2_cli.core import models, records
from gramr2_cli.core.errors import GramrError
from gramr2_cli.engines import Generation, encode
from gramr2_cli.judging import judge, truncation
from gramr2_cli.stages import evaluate, rank_pairs, self_label

QUESTION = "What is 2 + 2?"
LONG_GOOD = "good " + " ".join(f"step{i}" for i in range(600)) + " so the answer is 4"


@pytest.fixture(scope="module")
def tok():
    return models.load_tokenizer(str(models.embedded_dir("smollm2-135m")))


def prefers_good(q, a, b, k):
    return ("A", 0.9) if a.startswith("good") else ("B", 0.1)


class ContextEngine(ScriptedEngine):
    """The scripted judge with a real tokenizer (SmolLM2's chat template) and a small context."""

    def __init__(self, decide, tokenizer, context_length):
        super().__init__(decide)
        self.tokenizer = tokenizer
        self.context_length = context_length


# ---------------------------------------------------------------- the pure parts

def test_water_level_cuts_the_longer_response_first():
    assert truncation.water_level([100, 10], 200) == 100          # fits: nothing cut
    assert truncation.water_level([100, 10], 60) == 50            # the short one stays whole
    assert truncation.water_level([100, 80], 100) == 50           # both cut to one cap
    assert truncation.water_level([100, 80], 0) == 0


def test_trim_keeps_the_ends_with_a_visible_marker(tok):
    text = " ".join(f"w{i}" for i in range(40))
    ids = encode(tok, text)
    middle = truncation.trim(tok, text, 10, "middle")
    assert middle == f"{tok.decode(ids[:5])}\n{truncation.MARKER}\n{tok.decode(ids[-5:])}"
    assert middle == f"w0 w1 w\n{truncation.MARKER}\n38 w39"                     # 10 tokens: w|0| w|1| w …
    assert truncation.trim(tok, text, 10, "end") == f"{tok.decode(ids[:10])}\n{truncation.MARKER}"
    assert truncation.trim(tok, text, len(ids), "end") == text      # nothing to cut: unchanged


def test_unknown_policy_is_an_error():
    with pytest.raises(GramrError, match=r"truncate: unknown value 'both'; choose from skip, middle, end"):
        judge.judge_pairs(None, [records.new_pair("q", "a", "b")], truncate="both")
    with pytest.raises(GramrError, match="generate.truncate"):
        recipe.load(None, ["generate.truncate=cut"])
    with pytest.raises(GramrError, match="retry_truncated_tokens must be 0 .off. or more than"):
        recipe.load(None, ["generate.max_new_tokens=64", "generate.retry_truncated_tokens=32"])


# ---------------------------------------------------------------- generate.truncate on a scripted judge

@pytest.mark.parametrize("policy", ["middle", "end"])
def test_a_response_longer_than_the_context_is_trimmed_judged_and_counted(tok, policy):
    pair = records.new_pair(QUESTION, LONG_GOOD, "bad 5")
    eng = ContextEngine(prefers_good, tok, context_length=300)
    assert len(encode(tok, LONG_GOOD)) > 300                      # the response alone overflows the context
    [skipped] = judge.judge_pairs(eng, [pair], orders="both", max_new_tokens=40)
    assert (skipped.label, skipped.reason, eng.calls) == (None, "too_long_for_context", [])

    [j] = judge.judge_pairs(eng, [pair], orders="both", max_new_tokens=40, truncate=policy)
    assert (j.label, j.reason, j.responses_truncated, j.votes) == ("A", None, 1, {"A": 2, "B": 0, "null": 0})
    [seen] = eng.calls
    assert len(seen) == 2 and all(len(encode(tok, p)) <= 300 - 40 for p in seen)
    q, a, b = eng.parse(seen[0])
    assert q == QUESTION and b == "bad 5"                         # question and the short response intact
    assert a.startswith("good step0 step1") and truncation.MARKER in a
    assert a.endswith("so the answer is 4") == (policy == "middle")
    assert eng.parse(seen[1]) == (q, b, a)                        # the swapped order shows the same texts
    assert "Reply as <think>Feedback" in seen[0]                  # the instructions are never cut


def test_both_responses_long_are_cut_to_one_cap_and_a_long_question_is_still_skipped(tok):
    long_bad = "bad " + " ".join(f"x{i}" for i in range(600))
    pair = records.new_pair(QUESTION, LONG_GOOD, long_bad)
    eng = ContextEngine(prefers_good, tok, context_length=300)
    [j] = judge.judge_pairs(eng, [pair], max_new_tokens=40, truncate="middle")
    assert (j.label, j.responses_truncated) == ("A", 2)
    _, a, b = eng.parse(eng.calls[0][0])
    assert abs(len(encode(tok, a)) - len(encode(tok, b))) <= 2    # one common cap
    huge_question = records.new_pair("why? " * 400, "good 4", "bad 5")
    [j] = judge.judge_pairs(eng, [huge_question], max_new_tokens=40, truncate="middle")
    assert (j.label, j.reason, j.responses_truncated) == (None, "too_long_for_context", 0)


# ---------------------------------------------------------------- truncated rationales

class WordEngine:
    """A judge whose reply is `words` words long (then its verdict); a reply cut at max_new_tokens words ends
    with finish_reason "length". `silent` prompts finish early without a verdict. Records (prompts, budget)."""

    name = "words"
    context_length = None

    def __init__(self, words: dict[str, int], silent: tuple[str, ...] = ()):
        self.words, self.silent = words, silent
        self.tokenizer = ScriptedEngine(None).tokenizer
        self.calls: list[tuple[list[str], int]] = []

    def generate(self, prompts_, *, n=1, temperature=0.0, max_new_tokens=128, seed=0, top_p=1.0,
                 answer_token_probs=False):
        self.calls.append((list(prompts_), max_new_tokens))
        out = []
        for p in prompts_:
            q, a, _ = ScriptedEngine.parse(p)
            if q in self.silent:
                out.append([Generation("I cannot decide.", 4, -1.0, -0.25, "stop")] * n)
                continue
            verdict = "A" if a.startswith("good") else "B"
            full = ("blah " * self.words[q]).split() + reply(verdict).split(" ")
            cut = len(full) > max_new_tokens
            text = " ".join(full[:max_new_tokens])
            out.append([Generation(text, min(len(full), max_new_tokens), -1.0, -0.1, "length" if cut else "stop")
                        for _ in range(n)])
        return out


def test_a_reply_cut_at_max_new_tokens_is_truncated_not_unparseable():
    pairs = [records.new_pair("long", "good", "bad"), records.new_pair("short", "good", "bad"),
             records.new_pair("mute", "good", "bad")]
    eng = WordEngine({"long": 50, "short": 0}, silent=("mute",))
    cut, fine, mute = judge.judge_pairs(eng, pairs, n=2, temperature=0.8, max_new_tokens=20)
    assert (cut.label, cut.reason, cut.truncated, cut.votes["null"]) == (None, "truncated", 2, 2)
    assert [s["truncated"] for s in cut.samples] == [True, True]
    assert (fine.label, fine.truncated) == ("A", 0)
    assert (mute.label, mute.reason, mute.truncated) == (None, "unparseable", 0)
    assert judge.tally([cut, fine, mute]) == {"truncated": 2, "unparseable": 2, "retried": 0,
                                              "responses_truncated": 0}
    assert judge.tally([cut.to_meta(), mute.to_meta()]) == {"truncated": 2, "unparseable": 2, "retried": 0,
                                                            "responses_truncated": 0}


def test_retry_truncated_regenerates_only_the_cut_off_prompts_with_the_larger_budget():
    pairs = [records.new_pair("long", "good", "bad"), records.new_pair("short", "bad", "good")]
    eng = WordEngine({"long": 50, "short": 0})
    cut, fine = judge.judge_pairs(eng, pairs, n=2, temperature=0.8, max_new_tokens=20, orders="both",
                                  retry_truncated_tokens=100)
    assert [(len(ps), budget) for ps, budget in eng.calls] == [(4, 20), (2, 100)]
    assert [ScriptedEngine.parse(p)[0] for p in eng.calls[1][0]] == ["long", "long"]   # both orders of "long"
    assert (cut.label, cut.reason, cut.truncated, cut.retried, cut.votes) == ("A", None, 0, 4,
                                                                              {"A": 4, "B": 0, "null": 0})
    assert (fine.label, fine.retried) == ("B", 0)
    # a budget still too small: the samples stay truncated, and say they were retried
    eng = WordEngine({"long": 500})
    [cut] = judge.judge_pairs(eng, pairs[:1], max_new_tokens=20, retry_truncated_tokens=100)
    assert (cut.reason, cut.truncated, cut.retried, [c[1] for c in eng.calls]) == ("truncated", 1, 1, [20, 100])


# ---------------------------------------------------------------- the hf engine

def test_hf_truncated_samples_and_their_retry_continue_the_same_text(tiny_model):
    from gramr2_cli.engines.hf import HFEngine
    eng = HFEngine(str(tiny_model))
    pair = records.new_pair(QUESTION, "4", "5")
    [j] = judge.judge_pairs(eng, [pair], orders="both", max_new_tokens=3)
    # a random tiny model says no verdict in 3 tokens: both orders' samples are cut off, none finished
    assert (j.label, j.reason, j.truncated, j.votes["null"], j.parse_ok) == (None, "truncated", 2, 2, 0)
    first = [s["text"] for s in j.samples]
    [r] = judge.judge_pairs(eng, [pair], orders="both", max_new_tokens=3, retry_truncated_tokens=12)
    assert r.retried == 2 and [s["retried"] for s in r.samples] == [True, True]
    assert all(s["text"].startswith(t) and len(s["text"]) > len(t) for s, t in zip(r.samples, first))


def test_hf_a_response_longer_than_the_context_is_judged_under_the_option(tiny_model):
    from gramr2_cli.engines.hf import HFEngine
    eng = HFEngine(str(tiny_model))
    long = "good " + "step " * 2500                                  # > the tiny model's 2048 positions
    pair = records.new_pair(QUESTION, long, "bad 5")
    [skipped] = judge.judge_pairs(eng, [pair], max_new_tokens=4)
    [j] = judge.judge_pairs(eng, [pair], max_new_tokens=4, truncate="end")
    assert (skipped.reason, skipped.parse_ok + skipped.votes["null"]) == ("too_long_for_context", 0)
    assert (j.reason != "too_long_for_context", j.votes["null"] + j.parse_ok, j.responses_truncated) == (True, 1, 1)


# ---------------------------------------------------------------- stage summaries and evaluate's report

def _write(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def test_stage_summaries_count_truncated_responses_and_samples(tmp_path, tok):
    recs = [records.new_pair(QUESTION, LONG_GOOD, "bad 5", label="A"), records.new_pair(QUESTION, "good 4", "bad 5",
                                                                                        label="A")]
    src = _write(tmp_path / "in.jsonl", recs)
    cfg = recipe.load(None, ["generate.truncate=middle", "generate.max_new_tokens=40"])
    eng = ContextEngine(prefers_good, tok, context_length=300)
    s = rank_pairs.run(cfg, [src], tmp_path / "rank", engine=eng, progress=False)
    assert (s.metrics["responses_truncated"], s.metrics["truncated"], s.metrics["accuracy"]) == (1, 0, 1.0)
    s = self_label.run(cfg, [src], tmp_path / "sl", engine=eng, progress=False)
    assert (s.metrics["responses_truncated"], s.metrics["truncated"]) == (1, 0)
    s = evaluate.run(cfg, [src], tmp_path / "ev", models=["m"], engines={"m": eng}, progress=False)
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    cell = report["models"]["m"]["metrics"]["overall"]
    assert (cell["responses_truncated"], cell["truncated"], cell["accuracy"]) == (1, 0, 1.0)
    assert s.metrics["m: responses_truncated"] == 1


def test_evaluate_reports_truncated_samples_apart_from_unparseable(tmp_path):
    recs = [records.new_pair("long", "good", "bad", label="A"), records.new_pair("mute", "good", "bad", label="A"),
            records.new_pair("short", "good", "bad", label="A")]
    src = _write(tmp_path / "in.jsonl", recs)
    eng = WordEngine({"long": 50, "short": 0}, silent=("mute",))
    cfg = recipe.load(None, ["generate.max_new_tokens=20"])
    evaluate.run(cfg, [src], tmp_path / "ev", models=["m"], engines={"m": eng}, progress=False)
    cell = json.loads((tmp_path / "ev" / "report.json").read_text())["models"]["m"]["metrics"]["overall"]
    assert (cell["truncated"], cell["unparseable"], cell["correct"]) == (1, 1, 1)
    md = (tmp_path / "ev" / "report.md").read_text()
    assert "| truncated | unparseable |" in md and "| 1 | 1 |" in md
