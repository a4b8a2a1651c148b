"""Exporters: pair records → prompt/chosen/rejected (TRL/OpenRLHF) or alpaca (LLaMA-Factory SFT) JSONL."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .. import outdir, outguard, prompts, readers
from ..errors import GramrError
from ..shards import Summary


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
        outguard.check_not_input(path, inputs)
        if path.is_dir():
            raise GramrError(f"{path}: is a directory; export writes one JSONL file")
        if path.exists() and not overwrite:
            raise GramrError(f"{path}: exists", hint="use --overwrite to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
    skipped: Counter = Counter()
    rows = 0
    with contextlib.nullcontext(sys.stdout) if to_stdout else outdir.atomic_open(path) as f:
        for rec in readers.read(inputs, skipped=skipped):
            if rec["label"] is None:
                skipped["unlabeled"] += 1
                continue
            row = export_pairs(rec, messages) if fmt == "pairs" else export_alpaca(rec, prompt_version)
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            rows += 1
        f.flush()   # stdout: the reader downstream gets every row now; a file appears whole on the rename
    return Summary("export", {"out": rows}, dict(skipped), time.time() - t0, [] if to_stdout else [str(path)],
                   {"format": fmt})
