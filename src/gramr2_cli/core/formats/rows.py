"""Helpers every importer uses on one source row: required columns, messages, responses, prompts, extras."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import GramrError


class Skip(Exception):
    """A row the format says to drop (a tie, an unknown label); counted by `reason`, never an error."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _need(row: dict, col: str, where: str, fmt: str) -> Any:
    if not isinstance(row, dict):
        raise GramrError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if col in row and row[col] is None:
        raise GramrError(f"{where}: column '{col}' is null (format {fmt})",
                         hint="every row needs a value there; drop or fix the rows where it is null")
    if col not in row:
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
