"""serve's request side: reading and checking request bodies, the API key, OpenRLHF's query → (question,
response). Pure functions over strings and dicts (FastAPI's HTTPException is imported lazily), so the rules are
tested without a server.
"""

from __future__ import annotations

import hmac
import json
import re

from ..core import readers
from ..core.errors import GramrError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Tokens a policy's decoded text may end with: end-of-turn / end-of-text markers and right padding. All of them
# are stripped off the end of a response, repeatedly (`<|im_end|><pad><pad>`); `serve.strip_tokens` adds more.
END_MARKERS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "</s>", "<|end|>", "<eos>",
               "<end_of_turn>", "<pad>", "<|pad|>", "[PAD]", "<|padding|>", "<|finetune_right_pad_id|>")

# Chat templates a policy may have rendered OpenRLHF's prompt with: (turn regex with groups role, content).
# The judge's question is the user turn (one user turn: its text; more turns: `User: …` lines); a prompt with no
# such markup is taken as it is.
TEMPLATES = {
    "chatml": re.compile(r"<\|im_start\|>(\w+)\n(.*?)(?:<\|im_end\|>|$)", re.DOTALL),
    "llama3": re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n\n(.*?)(?:<\|eot_id\|>|$)", re.DOTALL),
    "gemma": re.compile(r"<start_of_turn>(\w+)\n(.*?)(?:<end_of_turn>|$)", re.DOTALL),
}
TEMPLATE_NAMES = ("auto", "none", *TEMPLATES)


def http(status: int, msg: str):
    from fastapi import HTTPException
    return HTTPException(status_code=status, detail=msg)


def authorized(header: str | None, api_key: str | None) -> bool:
    """True when no key is set, or `header` is `Bearer <api_key>` (constant-time comparison)."""
    if not api_key:
        return True
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


async def read_json(request, max_bytes: int) -> dict:
    """The request's JSON object; 413 past `max_bytes` (checked while streaming), 400 for invalid JSON."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise http(413, f"request body of {declared} bytes exceeds max_body_bytes={max_bytes}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise http(413, f"request body exceeds max_body_bytes={max_bytes}")
        chunks.append(chunk)
    try:
        # readers.loads: nesting past Python's stack and lone surrogates (`"\ud800"`, which no tokenizer can
        # encode) are bad requests too, not a 500 with a traceback in the log
        body = readers.loads(b"".join(chunks).decode("utf-8"), "request body")
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise http(400, f"invalid JSON body ({e})") from None
    except GramrError as e:
        raise http(400, f"invalid JSON body ({e.message.removeprefix('request body: ')})") from None
    if not isinstance(body, dict):
        raise http(400, f"the JSON body must be an object, got {type(body).__name__}")
    return body


def str_lists(body: dict, keys: tuple[str, ...], max_items: int, optional: tuple[str, ...] = ()
              ) -> list[list[str] | None]:
    """The lists of strings under `keys`, all the same non-zero length (None for an absent `optional` key);
    422 naming the field otherwise."""
    out: list[list[str] | None] = []
    for k in keys:
        v = body.get(k)
        if v is None:
            if k in optional:
                out.append(None)
                continue
            raise http(422, f"missing field '{k}' (expected a list of strings)")
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise http(422, f"field '{k}' must be a list of strings")
        out.append(v)
    lens = {k: len(v) for k, v in zip(keys, out) if v is not None}
    if len(set(lens.values())) != 1:
        raise http(422, f"fields must have the same length, got {lens}")
    n = len(out[0])
    if n == 0:
        raise http(422, f"field '{keys[0]}' is empty")
    if n > max_items:
        raise http(422, f"{n} items exceed max_items={max_items}; split the request")
    return out


def compare_pairs(body: dict, max_items: int) -> list[dict]:
    keys = ("prompt", "response_a", "response_b")
    if "pairs" not in body:
        return [dict(zip(keys, t)) for t in zip(*str_lists(body, keys, max_items))]
    pairs = body["pairs"]
    if not isinstance(pairs, list) or not pairs:
        raise http(422, "field 'pairs' must be a non-empty list of {prompt, response_a, response_b}")
    if len(pairs) > max_items:
        raise http(422, f"{len(pairs)} pairs exceed max_items={max_items}; split the request")
    for i, p in enumerate(pairs):
        if not isinstance(p, dict) or not all(isinstance(p.get(k), str) for k in keys):
            raise http(422, f"pairs[{i}] must be an object with string fields prompt, response_a, response_b")
    return [{k: p[k] for k in keys} for p in pairs]


def check_tokens(tokenizer, texts: list[list[str]], limit: int) -> None:
    """413 naming the first item whose texts (question and responses) have more than `limit` tokens together.
    0 = no limit. The judge prompt adds its template's few hundred tokens on top (not counted here)."""
    if not limit or tokenizer is None or not hasattr(tokenizer, "encode"):
        return
    for i, parts in enumerate(texts):
        n = sum(len(tokenizer.encode(t, add_special_tokens=False)) for t in parts)
        if n > limit:
            raise http(413, f"item {i}: {n} prompt tokens exceed serve.max_prompt_tokens={limit}")


def strip_end(text: str, extra: tuple[str, ...] = ()) -> str:
    """`text` without surrounding whitespace and every trailing end marker or pad token (repeatedly)."""
    markers = END_MARKERS + tuple(extra)
    resp, changed = text.strip(), True
    while changed:
        changed = False
        for m in markers:
            if m and resp.endswith(m):
                resp, changed = resp[: -len(m)].rstrip(), True
    return resp


def split_query(query: str, prompt: str, extra: tuple[str, ...] = ()) -> str:
    """The response inside an OpenRLHF query: the text after `prompt` (OpenRLHF decodes prompt + response as one
    string). Left padding before the prompt is ignored; trailing end markers and pad tokens (`strip_end`) are
    stripped off the response. Raises GramrError when the prompt is not in it."""
    k = query.find(prompt) if prompt else 0
    if k < 0:
        raise GramrError("query does not contain its prompt; OpenRLHF sends query = prompt + response")
    return strip_end(query[k + len(prompt):], extra)


def question_of(prompt: str, template: str = "auto") -> str:
    """The judge's question inside a policy's chat-templated prompt: the content of its turns under the
    `template`'s markers (`auto`: the first of TEMPLATES whose markers occur). System turns are dropped; one
    user turn → its text; several turns → `User: …` / `Assistant: …` lines. No markup (or `none`): the prompt
    stripped of left padding and surrounding whitespace."""
    text = strip_end(prompt.lstrip().removeprefix("<|begin_of_text|>").removeprefix("<bos>"))
    names = [n for n in TEMPLATES if template in ("auto", n)] if template != "none" else []
    for name in names:
        turns = [(r, c.strip()) for r, c in TEMPLATES[name].findall(text) if r != "system"]
        turns = [(r, c) for r, c in turns if c or r == "user"]
        if not turns:
            continue
        if len(turns) == 1:
            return turns[0][1]
        return "\n".join(f"{'Assistant' if r in ('assistant', 'model') else r.capitalize()}: {c}" for r, c in turns)
    return text.strip()
