"""The pair record of DESIGN §2: validation, normalisation and content-hash ids.

A record is a plain dict (it travels as one JSON line). `normalize()` is the single gate every record passes
through on its way into a stage; it fills defaults and raises `GramrError` naming where the record came from.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .errors import GramrError

LABELS = ("A", "B")
SEP = "\u241f"  # '␟', the separator DESIGN §2 hashes with
TEXT_FIELDS = ("prompt", "response_a", "response_b")
KNOWN_FIELDS = ("id", "prompt", "response_a", "response_b", "label", "rationale", "source", "meta")


def make_id(prompt: str, response_a: str, response_b: str) -> str:
    """sha256 of `prompt␟response_a␟response_b`, first 16 hex digits: stable across runs and machines."""
    return hashlib.sha256(SEP.join((prompt, response_a, response_b)).encode("utf-8")).hexdigest()[:16]


def swap_label(label: str | None) -> str | None:
    """The label of the same pair presented in the other order."""
    return {"A": "B", "B": "A"}.get(label) if label is not None else None


def twin_key(rec: dict) -> tuple[str, str, str]:
    """The same for a pair and its twin (the same prompt with the two responses swapped), and for nothing else."""
    a, b = rec["response_a"], rec["response_b"]
    return (rec["prompt"], *sorted((a, b)))


def twins_adjacent(recs: list[dict]) -> list[dict]:
    """`recs` reordered so that the records of one `twin_key` follow each other, in order of first appearance."""
    groups: dict[tuple, list[dict]] = {}
    for r in recs:
        groups.setdefault(twin_key(r), []).append(r)
    return [r for g in groups.values() for r in g]


def normalize(rec: Any, where: str = "record", require_label: bool = False) -> dict:
    """Validate one pair record and return it with defaults filled (id, label, rationale, source, meta).

    Fields we do not know are moved into `meta` so nothing is lost. Raises `GramrError` naming `where`
    (e.g. `data.jsonl line 17`) and the field for: a non-object, a missing or empty prompt/response,
    a label other than "A"/"B"/null, a non-string rationale, a non-object meta, or (with `require_label`) a null label.
    """
    if not isinstance(rec, dict):
        raise GramrError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    for f in TEXT_FIELDS:
        if f not in rec or rec[f] is None:
            raise GramrError(f"{where}: missing field '{f}'",
                             hint="records need prompt, response_a, response_b; use 'gramr2 data import' "
                                  "for prompt/chosen/rejected and benchmark formats")
        if not isinstance(rec[f], str):
            raise GramrError(f"{where}: '{f}' must be a string, got {type(rec[f]).__name__}")
        if not rec[f].strip():
            raise GramrError(f"{where}: '{f}' is empty")
    label = rec.get("label")
    if label not in (None, *LABELS):
        raise GramrError(f"{where}: 'label' must be \"A\", \"B\" or null, got {label!r}")
    if require_label and label is None:
        raise GramrError(f"{where}: 'label' is null but this stage needs labeled pairs")
    rationale = rec.get("rationale")
    if rationale is not None and not isinstance(rationale, str):
        raise GramrError(f"{where}: 'rationale' must be a string or null, got {type(rationale).__name__}")
    meta = rec.get("meta")
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise GramrError(f"{where}: 'meta' must be an object, got {type(meta).__name__}")
    rid = rec.get("id")
    if rid is None or rid == "":
        rid = make_id(rec["prompt"], rec["response_a"], rec["response_b"])
    out = {
        "id": str(rid),
        "prompt": rec["prompt"],
        "response_a": rec["response_a"],
        "response_b": rec["response_b"],
        "label": label,
        "rationale": rationale,
        "source": str(rec.get("source") or ""),
        "meta": dict(meta),
    }
    extra = {k: v for k, v in rec.items() if k not in KNOWN_FIELDS}
    if extra:
        out["meta"].setdefault("extra", {}).update(extra)
    return out


def new_pair(prompt: str, response_a: str, response_b: str, label: str | None = None,
             rationale: str | None = None, source: str = "", meta: dict | None = None,
             id: str | None = None) -> dict:
    """Build a validated record from parts (importers and synth use this)."""
    return normalize({"id": id, "prompt": prompt, "response_a": response_a, "response_b": response_b,
                      "label": label, "rationale": rationale, "source": source, "meta": meta or {}})


# ---------------------------------------------------------------- list records (rank list, RewardBench 2)

def list_id(prompt: str, candidates: list[str]) -> str:
    """sha256 of prompt␟candidate_0␟…, first 16 hex (stable, like pair ids)."""
    return hashlib.sha256(SEP.join([prompt, *candidates]).encode("utf-8")).hexdigest()[:16]


def normalize_list(obj: Any, where: str) -> dict:
    """Validate a listwise record {prompt, candidates[, id, source, meta]}. Raises GramrError naming `where`."""
    if not isinstance(obj, dict):
        raise GramrError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    prompt, cands = obj.get("prompt"), obj.get("candidates")
    if not isinstance(prompt, str) or not prompt.strip():
        raise GramrError(f"{where}: 'prompt' must be a non-empty string")
    if not isinstance(cands, list) or not cands:
        raise GramrError(f"{where}: 'candidates' must be a non-empty list of strings",
                         hint="rank list reads {\"prompt\": ..., \"candidates\": [...]}; use 'rank pairs' for pairs")
    for k, c in enumerate(cands):
        if not isinstance(c, str) or not c.strip():
            raise GramrError(f"{where}: candidates[{k}] must be a non-empty string")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise GramrError(f"{where}: 'meta' must be an object")
    rec = dict(obj)
    rec["id"] = str(obj.get("id") or list_id(prompt, cands))
    rec["meta"] = dict(meta)
    return rec
