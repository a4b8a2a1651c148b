"""Importers and exporters: outside preference data <-> the pair record of DESIGN §2.

Importers (`gramr2 data import --format …`) turn one source row into zero or more pair records:
- `pairs`: prompt/chosen/rejected (TRL, RewardBench convention); the prompt may be a message list
  (`prompt` or `messages`), chosen/rejected may be message lists (the last assistant turn is the response).
- `helpsteer3`: context/response1/response2/overall_preference (−3..3, negative = response1 better, 0 = tie → skipped).
- `rmbench`: chosen[3] × rejected[3] → 9 pairs with the style cell (i, j) and RM-Bench's easy/normal/hard.
- `judgebench`: question/response_A/response_B/label ("A>B" | "B>A"), or prompt/chosen/rejected + source.
- `rewardbench`: prompt/chosen/rejected/subset.
Every importer yields the pair in its *natural* order (chosen first; response1/response_A first where the source
has an order and a label); `order` then keeps it (`fixed`), swaps it by a seeded hash of the pair (`random`), or
writes both (`both`, linked by `meta.pair_group`). Ids are content hashes (records.make_id), so they do not depend
on batch boundaries, shards or the order rows arrive in.

Exporters (`gramr2 data export`): `pairs` (prompt/chosen/rejected for TRL/OpenRLHF reward/DPO trainers) and
`alpaca` (instruction/input/output for LLaMA-Factory SFT on the judge prompt and the judgment text).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import prompts, records, shards
from .errors import GramrError
from .shards import Summary

ORDERS = ("fixed", "random", "both")
RMBENCH_STYLES = ("concise", "detailed_plain", "detailed_markdown")   # RM-Bench's column order of chosen/rejected
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


@dataclass
class ImportConfig:
    format: str = "auto"         # auto | pairs | helpsteer3 | rmbench | judgebench | rewardbench
    order: str = "fixed"         # fixed | random | both (see module docstring)
    seed: int = 0                # only `random` uses it
    source: str = ""             # the records' `source`; "" = the format's name
    batch_size: int = 256        # records per flush of the part file


class Skip(Exception):
    """A row the format says to drop (a tie, an unknown label); counted by `reason`, never an error."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------- helpers for rows

def _need(row: dict, col: str, where: str, fmt: str) -> Any:
    if not isinstance(row, dict):
        raise GramrError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if col not in row or row[col] is None:
        raise GramrError(f"{where}: missing column '{col}' (format {fmt})",
                         hint=f"columns present: {', '.join(map(str, row)) or 'none'}")
    return row[col]


def _content(msg: Any, where: str) -> str:
    if isinstance(msg, str):
        return msg
    if not isinstance(msg, dict) or "content" not in msg:
        raise GramrError(f"{where}: a message must be an object with 'role' and 'content', got {str(msg)[:60]!r}")
    c = msg["content"]
    if isinstance(c, list):  # OpenAI-style content parts: keep the text parts
        c = "".join(p.get("text", "") for p in c if isinstance(p, dict))
    return str(c)


def render_messages(messages: list, where: str = "record") -> str:
    """A conversation as prompt text: one user turn is its bare content; more turns become
    `User: …\\nAssistant: …` lines (the list itself is kept in `meta.messages`)."""
    if not isinstance(messages, list) or not messages:
        raise GramrError(f"{where}: a conversation must be a non-empty list of messages")
    if len(messages) == 1 and (not isinstance(messages[0], dict) or messages[0].get("role", "user") == "user"):
        return _content(messages[0], where)
    lines = []
    for m in messages:
        role = str(m.get("role", "user")) if isinstance(m, dict) else "user"
        lines.append(f"{role[:1].upper()}{role[1:]}: {_content(m, where)}")
    return "\n".join(lines)


def _response(value: Any, col: str, where: str) -> str:
    """A response column: a string, or a message list whose last assistant turn is the response."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        turns = [m for m in value if isinstance(m, dict) and m.get("role") == "assistant"]
        return _content((turns or value)[-1], f"{where} column '{col}'")
    raise GramrError(f"{where}: column '{col}' must be a string or a list of messages, got {type(value).__name__}")


def _prompt(row: dict, where: str, fmt: str, meta: dict) -> str:
    """The prompt of a prompt/chosen/rejected row: `prompt` (text or messages), `messages`, or — for
    full-conversation chosen lists (Anthropic HH style) — the turns before the final assistant reply."""
    value = row.get("prompt")
    if value is None:
        value = row.get("messages")
    if value is None:
        chosen = row.get("chosen")
        if isinstance(chosen, list) and len(chosen) > 1:
            value = chosen[:-1]
        else:
            _need(row, "prompt", where, fmt)
    if isinstance(value, str):
        return value
    meta["messages"] = value
    return render_messages(value, f"{where} column 'prompt'")


def _extra(row: dict, used: Iterable[str]) -> dict:
    """Columns the importer did not consume: kept in meta so nothing is lost (a source `id` becomes
    `meta.source_id`, since our ids are content hashes)."""
    used = set(used)
    out = {k: v for k, v in row.items() if k not in used and k != "id"}
    if "id" in row and "id" not in used:
        out["source_id"] = row["id"]
    return out


# ---------------------------------------------------------------- importers: row -> natural-order pairs
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


def import_rmbench(row: dict, where: str) -> list[tuple]:
    prompt = _need(row, "prompt", where, "rmbench")
    chosen, rejected = _need(row, "chosen", where, "rmbench"), _need(row, "rejected", where, "rmbench")
    for col, v in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(v, list) or len(v) != 3:
            raise GramrError(f"{where}: column '{col}' must be a list of 3 responses "
                             f"(concise, detailed, markdown) in format rmbench")
    base: dict = {}
    if not isinstance(prompt, str):
        prompt = _prompt(row, where, "rmbench", base)
    category = row.get("domain") or row.get("subset")
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


def _judgebench_category(source: str) -> str | None:
    return next((cat for prefix, cat in JUDGEBENCH_CATEGORIES if source.startswith(prefix)), None)


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
        meta["category"] = _judgebench_category(src) or src
    meta.update(_extra(row, used))
    return [(prompt, a, b, label, None, meta)]


_HS3_RESPONSE = re.compile(r"@?Response\s*([12])\b")


def import_helpsteer3(row: dict, where: str) -> list[tuple]:
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
    label = "A" if pref < 0 else "B"
    meta: dict = {}
    if isinstance(context, list):
        meta["messages"] = context
        prompt = render_messages(context, f"{where} column 'context'")
    else:
        prompt = str(context)
    # Rationale: the annotators who agree with the overall preference (a disagreeing one would argue
    # against the label). HelpSteer3 says "@Response 1/2"; our records say Response A/B.
    reasons = [str(p.get("reasoning") or "").strip() for p in row.get("individual_preference") or []
               if isinstance(p, dict) and isinstance(p.get("score"), (int, float)) and p["score"] * pref > 0]
    reasons = [r for r in reasons if r]
    rationale = "\n\n".join(_HS3_RESPONSE.sub(lambda m: "Response " + "AB"[int(m.group(1)) - 1], r)
                            for r in reasons) or None
    if row.get("domain"):
        meta["category"] = row["domain"]
    meta.update(_extra(row, ("context", "response1", "response2", "domain")))
    return [(prompt, r1, r2, label, rationale, meta)]


IMPORTERS: dict[str, Callable[[dict, str], list[tuple]]] = {
    "pairs": import_pairs, "helpsteer3": import_helpsteer3, "rmbench": import_rmbench,
    "judgebench": import_judgebench, "rewardbench": import_rewardbench,
}
FORMATS = ("auto", *IMPORTERS)


def detect(row: Any, where: str) -> str:
    """The importer for a row, from its columns. Raises GramrError listing the formats when none fits."""
    cols = set(row) if isinstance(row, dict) else set()
    if {"context", "response1", "response2"} <= cols:
        return "helpsteer3"
    if {"question", "response_A", "response_B"} <= cols:
        return "judgebench"
    if {"chosen", "rejected"} <= cols:
        c, r = row["chosen"], row["rejected"]
        if (isinstance(c, list) and isinstance(r, list) and len(c) == len(r) == 3
                and all(isinstance(x, str) for x in (*c, *r))):
            return "rmbench"
        if "subset" in cols:
            return "rewardbench"
        if cols & {"prompt", "messages"} or isinstance(c, list) or (isinstance(c, str) and _HH_TURN in c):
            return "pairs"
    known = "pairs (prompt/chosen/rejected), helpsteer3 (context/response1/response2/overall_preference), " \
            "rmbench (prompt/chosen[3]/rejected[3]), judgebench (question/response_A/response_B/label), " \
            "rewardbench (prompt/chosen/rejected/subset)"
    hint = ("these are already pair records; pass them to the stage directly"
            if {"prompt", "response_a", "response_b"} <= cols else f"known formats: {known}")
    raise GramrError(f"{where}: cannot detect the format from columns {sorted(map(str, cols))}; "
                     f"pass --format", hint=hint)


# ---------------------------------------------------------------- order and records

def flip(key: str, seed: int) -> bool:
    """Seeded, per-pair coin for `--order random`: depends only on the pair and the seed."""
    return hashlib.sha256(f"{seed}\u241f{key}".encode()).digest()[0] & 1 == 1


_RESPONSE_LETTER = re.compile(r"\bResponse ([AB])\b")


def swap_rationale(text: str | None) -> str | None:
    """A rationale for the swapped presentation: "Response A" and "Response B" trade places."""
    if text is None:
        return None
    return _RESPONSE_LETTER.sub(lambda m: "Response " + ("B" if m.group(1) == "A" else "A"), text)


def _id(prompt: str, a: str, b: str, key: str | None) -> str:
    base = records.make_id(prompt, a, b)
    if key is None:
        return base
    return hashlib.sha256(f"{base}{records.SEP}{key}".encode()).hexdigest()[:16]


def to_records(pair: tuple, order: str, seed: int, source: str, where: str) -> list[dict]:
    """Natural-order (prompt, first, second, label, rationale, meta[, key]) → pair records in the requested
    order(s). Ids are content hashes; `key` (RM-Bench's style cell) keeps pairs with equal text but different
    roles apart. `meta.pair_group` is the id of the natural order, shared by both orders of `--order both`."""
    prompt, first, second, label, rationale, meta, *rest = pair
    key = rest[0] if rest else None
    group = _id(prompt, first, second, key)
    swapped = {"fixed": [False], "both": [False, True], "random": [flip(group, seed)]}[order]
    out = []
    for sw in swapped:
        a, b, lab = (second, first, records.swap_label(label)) if sw else (first, second, label)
        m = dict(meta, pair_group=group, order="ba" if sw else "ab")
        out.append(records.normalize({"id": _id(prompt, a, b, key), "prompt": prompt, "response_a": a,
                                      "response_b": b, "label": lab,
                                      "rationale": swap_rationale(rationale) if sw else rationale,
                                      "source": source, "meta": m}, where))
    return out


def convert(inputs: list, cfg: ImportConfig, skipped: Counter,
            detected: dict | None = None) -> Iterator[tuple[str, dict]]:
    """Yield (where, record) for every importable row of `inputs`; dropped rows are counted in `skipped`.
    The format is detected per file (from its first row) when `cfg.format` is auto; `detected` gets
    {file: format}."""
    if cfg.format not in FORMATS:
        raise GramrError(f"unknown format {cfg.format!r}; choose from {', '.join(FORMATS)}")
    if cfg.order not in ORDERS:
        raise GramrError(f"unknown order {cfg.order!r}; choose from {', '.join(ORDERS)}")
    for src in shards.source_files(inputs):
        fmt = None if cfg.format == "auto" else cfg.format
        for where, row in shards.read_raw(src):
            if fmt is None:
                fmt = detect(row, where)
            if detected is not None:
                detected.setdefault(str(src), fmt)
            try:
                pairs = IMPORTERS[fmt](row, where)
            except Skip as s:
                skipped[s.reason] += 1
                continue
            for rec in (r for p in pairs for r in to_records(p, cfg.order, cfg.seed, cfg.source or fmt, where)):
                yield where, rec


def run(cfg: ImportConfig, inputs: list, output: Path | str, *, overwrite: bool = False,
        shard_index: int | None = None, num_shards: int | None = None,
        progress: Callable[[int], None] | None = None) -> Summary:
    """Import `inputs` into the shard directory `output` (or JSONL on stdout for `-`); resumable.

    Skips ids already written (resume), ids owned by another shard (by `meta.pair_group`, so both orders of a
    pair stay together), and repeated ids (`duplicate_id`). Raises GramrError for unreadable or malformed input."""
    skipped: Counter = Counter()
    labels: Counter = Counter()
    detected: dict[str, str] = {}
    seen: set[str] = set()
    hashed = {k: v for k, v in asdict(cfg).items() if k != "batch_size"}   # flush size never changes the output
    with shards.open_output(output, stage="import", config={"import": hashed}, inputs=inputs,
                            overwrite=overwrite, shard_index=shard_index, num_shards=num_shards,
                            batch_size=cfg.batch_size) as out:
        n = 0
        for _, rec in convert(inputs, cfg, skipped, detected):
            n += 1
            if progress:
                progress(n)
            if num_shards and num_shards > 1 and shards.shard_of(rec["meta"]["pair_group"], num_shards) != \
                    (shard_index or 0):
                continue
            if rec["id"] in seen:
                skipped["duplicate_id"] += 1
                continue
            seen.add(rec["id"])
            labels[str(rec["label"])] += 1
            if rec["id"] in out.done_ids:
                continue
            out.write(rec)
        for k, v in skipped.items():
            out.skip(k, v)
        out.counts["converted"] = n
        out.metrics.update(labels=dict(sorted(labels.items())), formats=detected)
    return out.summary()


# ---------------------------------------------------------------- exporters

def export_pairs(rec: dict, messages: bool = False) -> dict:
    """prompt/chosen/rejected (TRL/OpenRLHF). `messages=True` writes TRL's conversational form."""
    chosen, rejected = ((rec["response_a"], rec["response_b"]) if rec["label"] == "A"
                        else (rec["response_b"], rec["response_a"]))
    out: dict[str, Any] = {"id": rec["id"], "prompt": rec["prompt"], "chosen": chosen, "rejected": rejected}
    if messages:
        out["prompt"] = rec["meta"].get("messages") or [{"role": "user", "content": rec["prompt"]}]
        out["chosen"] = [{"role": "assistant", "content": chosen}]
        out["rejected"] = [{"role": "assistant", "content": rejected}]
    if rec["meta"].get("category") is not None:
        out["category"] = rec["meta"]["category"]
    return out


def export_alpaca(rec: dict, prompt_version: str = "gramr2-v1") -> dict:
    """instruction/input/output (LLaMA-Factory SFT): the judge prompt (system + user text, no chat template)
    and the reward model's target `<think>rationale</think><answer>label</answer>` (Eq. 2's s → (z, l))."""
    msgs = prompts.judge_messages(rec["prompt"], rec["response_a"], rec["response_b"], prompt_version)
    return {"instruction": "\n\n".join(m["content"] for m in msgs), "input": "",
            "output": prompts.judgment_text(rec["rationale"], rec["label"])}


EXPORTERS = ("pairs", "alpaca")


def export(inputs: list, output: Path | str, fmt: str, *, prompt_version: str = "gramr2-v1",
           messages: bool = False, overwrite: bool = False) -> Summary:
    """Write `inputs` (pair records) as one JSONL file (or stdout for `-`). Unlabeled records are skipped and
    counted (both formats need a label). Raises GramrError for an unknown format or an existing file."""
    if fmt not in EXPORTERS:
        raise GramrError(f"unknown export format {fmt!r}; choose from {', '.join(EXPORTERS)}")
    t0 = time.time()
    path = Path(output)
    to_stdout = str(output) == "-"
    if not to_stdout:
        if path.is_dir():
            raise GramrError(f"{path}: is a directory; export writes one JSONL file")
        if path.exists() and not overwrite:
            raise GramrError(f"{path}: exists", hint="use --overwrite to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
    skipped: Counter = Counter()
    rows = 0
    tmp = path.with_name(path.name + ".tmp")
    f = sys.stdout if to_stdout else open(tmp, "w", encoding="utf-8")  # noqa: SIM115 (closed below, or unlinked)
    try:
        for rec in shards.read(inputs, skipped=skipped):
            if rec["label"] is None:
                skipped["unlabeled"] += 1
                continue
            row = export_pairs(rec, messages) if fmt == "pairs" else export_alpaca(rec, prompt_version)
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            rows += 1
    except BaseException:
        if not to_stdout:
            f.close()
            tmp.unlink(missing_ok=True)
        raise
    if to_stdout:
        sys.stdout.flush()
    else:
        f.close()
        tmp.replace(path)  # a half-written export never looks finished
    return Summary("export", {"out": rows}, dict(skipped), time.time() - t0, [] if to_stdout else [str(path)],
                   {"format": fmt})
