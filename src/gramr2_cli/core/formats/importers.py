"""Importers: one source row → natural-order pairs (see the package docstring), and format detection."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import prompts
from ..errors import GramrError
from .rows import Skip, _extra, _need, _prompt, _response, render_messages

RMBENCH_STYLES = ("concise", "detailed_plain", "detailed_markdown")   # RM-Bench's column order of chosen/rejected
RMBENCH_DOMAINS = ("chat", "math", "code", "safety")                  # scripts/utils.py split_dataset_by_domain
JUDGEBENCH_LABELS = {"A>B": "A", "B>A": "B"}
JUDGEBENCH_CATEGORIES = (("mmlu-pro", "knowledge"), ("livebench-reasoning", "reasoning"),
                         ("livebench-math", "math"), ("livecodebench", "coding"))
# RewardBench's sections (rewardbench/constants.py SUBSET_MAPPING), so per-section accuracy can be reported.
REWARDBENCH_SECTIONS = {
    "chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"),
    "chat-hard": ("mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                  "llmbar-adver-GPTOut", "llmbar-adver-manual"),
    "safety": ("refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond",
               "donotanswer"),
    "reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
}


# Each returns a list of (prompt, first, second, label, rationale, meta[, key]); see `to_records`.

_HH_TURN = "\n\nAssistant:"


def _split_hh(text: str) -> tuple[str, str]:
    i = text.rfind(_HH_TURN)
    return text[:i].strip(), text[i + len(_HH_TURN):].strip()


def import_pairs(row: dict, where: str, fmt: str = "pairs") -> list[tuple]:
    meta: dict = {}
    chosen, rejected = _need(row, "chosen", where, fmt), _need(row, "rejected", where, fmt)
    if ("prompt" not in row and "messages" not in row and isinstance(chosen, str) and isinstance(rejected, str)
            and _HH_TURN in chosen and _HH_TURN in rejected):
        # Anthropic HH strings: "\n\nHuman: …\n\nAssistant: …"; the text before the last reply is the prompt
        (prompt, chosen), (other, rejected) = _split_hh(chosen), _split_hh(rejected)
        if prompt != other:
            raise GramrError(f"{where}: 'chosen' and 'rejected' differ before their last Assistant turn")
    else:
        prompt = _prompt(row, where, fmt, meta)
        chosen, rejected = _response(chosen, "chosen", where), _response(rejected, "rejected", where)
    meta.update(_extra(row, ("prompt", "messages", "chosen", "rejected")))
    return [(prompt, chosen, rejected, "A", None, meta)]


def import_rewardbench(row: dict, where: str) -> list[tuple]:
    _not_rewardbench2(row, where)
    subset = str(_need(row, "subset", where, "rewardbench"))
    ((prompt, chosen, rejected, label, rationale, meta),) = import_pairs(row, where, "rewardbench")
    meta.pop("subset")
    meta["category"] = subset
    section = next((s for s, subs in REWARDBENCH_SECTIONS.items() if subset in subs), None)
    if section:
        meta["section"] = section
    return [(prompt, chosen, rejected, label, rationale, meta)]


def rmbench_difficulty(i: int, j: int) -> str:
    """RM-Bench's cell class for chosen style i vs rejected style j (0 concise, 1 detailed, 2 markdown):
    hard = the chosen response is less formatted than the rejected one (i < j, upper-right triangle),
    normal = same style (diagonal), easy = chosen more formatted (i > j) — as in RM-Bench's compute_accuracy."""
    return "hard" if i < j else "normal" if i == j else "easy"


def rmbench_domain(category: Any) -> str | None:
    """RM-Bench's `split_dataset_by_domain`: the first of chat/math/code/safety the domain name starts with."""
    return next((d for d in RMBENCH_DOMAINS if category and str(category).startswith(d)), None)


def rmbench_file_domain(path: Any) -> str | None:
    """The domain of a released RM-Bench per-domain file, from its name (`data/chat_filtered.json` → `chat`,
    `safety-refuse_filtered.json` → `safety-refuse`); None when the name starts with no RM-Bench domain. Those
    files have no `domain` field (only `total_dataset.json` has one), and RM-Bench's own scorer treats such a
    file as one domain."""
    stem = Path(str(path)).name.split(".")[0].removesuffix("_filtered")
    return stem if rmbench_domain(stem) else None


def import_rmbench(row: dict, where: str, file_domain: str | None = None) -> list[tuple]:
    """RM-Bench row → the 9 style-cell pairs. The domain (`meta.category`) is the row's `domain`, else
    `file_domain` (`rmbench_file_domain` of the file it came from), else its `subset`."""
    prompt = _need(row, "prompt", where, "rmbench")
    chosen, rejected = _need(row, "chosen", where, "rmbench"), _need(row, "rejected", where, "rmbench")
    for col, v in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(v, list) or len(v) != 3:
            raise GramrError(f"{where}: column '{col}' must be a list of 3 responses "
                             f"(concise, detailed, markdown) in format rmbench")
    base: dict = {}
    if not isinstance(prompt, str):
        prompt = _prompt(row, where, "rmbench", base)
    category = row.get("domain") or file_domain or row.get("subset")
    if category:
        base["category"] = category
    base.update(_extra(row, ("prompt", "chosen", "rejected", "domain")))
    out = []
    for i in range(3):
        for j in range(3):
            meta = dict(base, style=[i, j], style_names=[RMBENCH_STYLES[i], RMBENCH_STYLES[j]],
                        difficulty=rmbench_difficulty(i, j))
            out.append((prompt, _response(chosen[i], "chosen", where), _response(rejected[j], "rejected", where),
                        "A", None, meta, f"rmbench:{i},{j}"))
    return out


def judgebench_category(source: Any) -> str | None:
    """knowledge / reasoning / math / coding from a JudgeBench `source` (e.g. `mmlu-pro-biology`)."""
    return next((cat for prefix, cat in JUDGEBENCH_CATEGORIES if str(source).startswith(prefix)), None)


def import_judgebench(row: dict, where: str) -> list[tuple]:
    meta: dict = {}
    if isinstance(row, dict) and "question" in row and "chosen" not in row:
        prompt = _need(row, "question", where, "judgebench")
        a = _response(_need(row, "response_A", where, "judgebench"), "response_A", where)
        b = _response(_need(row, "response_B", where, "judgebench"), "response_B", where)
        raw = _need(row, "label", where, "judgebench")
        if raw not in JUDGEBENCH_LABELS:
            raise Skip(f"label:{raw}")
        label = JUDGEBENCH_LABELS[raw]
        used = ("question", "response_A", "response_B", "label", "source", "pair_id")
        if "pair_id" in row:
            meta["source_id"] = row["pair_id"]
    else:
        prompt = _prompt(row, where, "judgebench", meta)
        a = _response(_need(row, "chosen", where, "judgebench"), "chosen", where)
        b = _response(_need(row, "rejected", where, "judgebench"), "rejected", where)
        label, used = "A", ("prompt", "messages", "chosen", "rejected", "source")
    if not isinstance(prompt, str):
        prompt = render_messages(prompt, where)
    src = str(row.get("source") or "")
    if src:
        meta["subset"] = src
        meta["category"] = judgebench_category(src) or src
    meta.update(_extra(row, used))
    return [(prompt, a, b, label, None, meta)]


_HS3_RESPONSE = re.compile(r"@?Response\s*([12])\b")


def _hs3_text(text: Any) -> str:
    """An annotator's text with HelpSteer3's "@Response 1/2" written as our "Response A/B"."""
    return _HS3_RESPONSE.sub(lambda m: "Response " + "AB"[int(m.group(1)) - 1], str(text or "").strip())


def helpsteer3_rationale(annotators: list, pref: int) -> str | None:
    """Our rationale format (Feedback / Comparison / Conclusion, `prompts.format_rationale`) from the annotators
    who agree with the overall preference `pref` (their score has its sign): Feedback = their per-response
    feedback (`feedback1` → Response A, `feedback2` → Response B), Comparison = their `reasoning`, Conclusion =
    the preferred response. None when they wrote no feedback or no reasoning. Ours (paper: not stated how the
    human feedback becomes a rationale)."""
    agree = [p for p in annotators if isinstance(p, dict) and isinstance(p.get("score"), (int, float))
             and p["score"] * pref > 0]
    fb = [" ".join(t for t in (_hs3_text(p.get(k)) for p in agree) if t) for k in ("feedback1", "feedback2")]
    comparison = " ".join(t for t in (_hs3_text(p.get("reasoning")) for p in agree) if t)
    if not (fb[0] or fb[1]) or not comparison:
        return None
    feedback = "\n".join(f"Response {x}: {t}" for x, t in zip("AB", fb) if t)
    win, lose = ("A", "B") if pref < 0 else ("B", "A")
    return prompts.format_rationale(feedback, comparison, f"Response {win} is better than Response {lose}.")


def import_helpsteer3(row: dict, where: str) -> list[tuple]:
    """HelpSteer3 preference row → one labeled pair with a human rationale (`helpsteer3_rationale`).

    Dropped (counted): ties (`overall_preference` 0) and rows where an annotator's score has the opposite sign
    of the overall preference (`annotators_disagree`; ours, paper: not stated: a rationale built from one side
    would argue against the other annotator's verdict). Each annotator's own text stays in
    `meta.individual_preference`."""
    context = _need(row, "context", where, "helpsteer3")
    r1 = _response(_need(row, "response1", where, "helpsteer3"), "response1", where)
    r2 = _response(_need(row, "response2", where, "helpsteer3"), "response2", where)
    pref = _need(row, "overall_preference", where, "helpsteer3")
    try:
        pref = int(pref)
    except (TypeError, ValueError):
        raise GramrError(f"{where}: 'overall_preference' must be an integer in -3..3, got {pref!r}") from None
    if not -3 <= pref <= 3:
        raise GramrError(f"{where}: 'overall_preference' must be in -3..3, got {pref}")
    if pref == 0:
        raise Skip("tie")
    annotators = row.get("individual_preference") or []
    if any(isinstance(p, dict) and isinstance(p.get("score"), (int, float)) and p["score"] * pref < 0
           for p in annotators):
        raise Skip("annotators_disagree")
    label = "A" if pref < 0 else "B"
    meta: dict = {}
    if isinstance(context, list):
        meta["messages"] = context
        prompt = render_messages(context, f"{where} column 'context'")
    else:
        prompt = str(context)
    if row.get("domain"):
        meta["category"] = row["domain"]
    meta.update(_extra(row, ("context", "response1", "response2", "domain")))
    return [(prompt, r1, r2, label, helpsteer3_rationale(annotators, pref), meta)]


# Q&A dumps (ours; paper: not stated how its StackExchange pairs were drawn): the top-voted answer against each
# other answer at least QA_MIN_MARGIN votes below it, at most QA_MAX_PAIRS per question (the lowest-voted first out).
QA_MIN_MARGIN = 1
QA_MAX_PAIRS = 4


def _qa_answer(a: Any, i: int, where: str) -> tuple[str, float]:
    if not isinstance(a, dict):
        raise GramrError(f"{where}: answers[{i}] must be an object with 'text' and 'pm_score' (or 'score')")
    text = a.get("text", a.get("body"))
    score = a.get("pm_score", a.get("score"))
    if not isinstance(score, (int, float)) or isinstance(score, bool):
        raise GramrError(f"{where}: answers[{i}] needs a numeric 'pm_score' or 'score', got {score!r}")
    return _response(text, f"answers[{i}].text", where), float(score)


def import_qa(row: dict, where: str) -> list[tuple]:
    """Q&A dump row (StackExchange style: `question` + `answers` [{text, pm_score|score, selected}]) → pairs
    that are UNLABELED for training: the vote-derived preference is kept in `meta` only (`gold_label` after
    `to_records`, `vote_margin`, `scores`), so self-label's pseudo-label precision can be measured.

    Pairing rule (ours, see QA_MIN_MARGIN / QA_MAX_PAIRS): the top-voted answer against each other answer at
    least QA_MIN_MARGIN below it, nearest scores first. A question with fewer than two answers, or whose answers
    are all within the margin, gives no pair (counted as `qa_no_pair`)."""
    question = _need(row, "question", where, "qa")
    if not isinstance(question, str) or not question.strip():
        raise GramrError(f"{where}: column 'question' must be a non-empty string")
    answers = _need(row, "answers", where, "qa")
    if not isinstance(answers, list):
        raise GramrError(f"{where}: column 'answers' must be a list of answers")
    scored = sorted((_qa_answer(a, i, where) for i, a in enumerate(answers)), key=lambda t: -t[1])
    if len(scored) < 2:
        raise Skip("qa_no_pair")
    (best, top), rest = scored[0], [(t, sc) for t, sc in scored[1:] if scored[0][1] - sc >= QA_MIN_MARGIN]
    if not rest:
        raise Skip("qa_no_pair")
    meta = _extra(row, ("question", "answers"))
    return [(question, best, other, "A", None, dict(meta, vote_margin=top - sc, scores=[top, sc]))
            for other, sc in rest[:QA_MAX_PAIRS]]


def scorer_gap(fmt: str, rec: dict) -> str | None:
    """Why a record imported as a benchmark gets no benchmark score in `evaluate` (metrics.benchmarks), or None:
    `rmbench_no_domain` (no RM-Bench domain in `meta.category`), `judgebench_no_category` (a `source` that names
    no JudgeBench category)."""
    meta = rec.get("meta") or {}
    if fmt == "rmbench" and not rmbench_domain(meta.get("category")):
        return "rmbench_no_domain"
    if fmt == "judgebench" and not judgebench_category(meta.get("subset") or ""):
        return "judgebench_no_category"
    return None


IMPORTERS: dict[str, Callable[[dict, str], list[tuple]]] = {
    "pairs": import_pairs, "helpsteer3": import_helpsteer3, "rmbench": import_rmbench,
    "judgebench": import_judgebench, "rewardbench": import_rewardbench, "qa": import_qa,
}
UNLABELED_FORMATS = ("qa",)   # formats whose labels are votes, not judgments: always imported unlabeled
FORMATS = ("auto", *IMPORTERS)


def _not_rewardbench2(row: Any, where: str) -> None:
    """RewardBench 2 rows (chosen/rejected lists with num_correct) are best-of-n lists, not pairs: importing them
    as pairs would keep one answer of each list. Raises GramrError pointing to `evaluate`, which reads them."""
    if isinstance(row, dict) and "num_correct" in row and isinstance(row.get("chosen"), list):
        raise GramrError(f"{where}: a RewardBench 2 row (best-of-n lists), not a pair",
                         hint="evaluate it as released: gramr2 evaluate FILE --model MODEL -o REPORT/ "
                              "(docs/evaluate.md, RewardBench 2)")


def detect(row: Any, where: str) -> str:
    """The importer for a row, from its columns. Raises GramrError listing the formats when none fits."""
    cols = set(row) if isinstance(row, dict) else set()
    _not_rewardbench2(row, where)
    if {"context", "response1", "response2"} <= cols:
        return "helpsteer3"
    if {"question", "response_A", "response_B"} <= cols:
        return "judgebench"
    if {"question", "answers"} <= cols and isinstance(row.get("answers"), list):
        return "qa"
    if {"chosen", "rejected"} <= cols:
        c, r = row["chosen"], row["rejected"]
        if {"pair_id", "source"} <= cols:          # JudgeBench's released prompt/chosen/rejected file
            return "judgebench"
        if (isinstance(c, list) and isinstance(r, list) and len(c) == len(r) == 3
                and all(isinstance(x, str) for x in (*c, *r))):
            return "rmbench"
        if "subset" in cols:
            return "rewardbench"
        if cols & {"prompt", "messages"} or isinstance(c, list) or (isinstance(c, str) and _HH_TURN in c):
            return "pairs"
    known = "pairs (prompt/chosen/rejected), helpsteer3 (context/response1/response2/overall_preference), " \
            "rmbench (prompt/chosen[3]/rejected[3]), judgebench (question/response_A/response_B/label), " \
            "rewardbench (prompt/chosen/rejected/subset), qa (question/answers[{text, pm_score}])"
    hint = ("these are already pair records; pass them to the stage directly"
            if {"prompt", "response_a", "response_b"} <= cols else f"known formats: {known}")
    raise GramrError(f"{where}: cannot detect the format from columns {sorted(map(str, cols))}; "
                     f"pass --format", hint=hint)
