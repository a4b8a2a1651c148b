"""Chat rendering and tokenization that keep untrusted text plain (docs/security.md).

The rule (ours; the paper is silent on it): only the chat template may produce special tokens. A prompt, a
response or anything else read from records or requests reaches the model as plain text, even when it contains
a special-token string such as `<|im_end|>` or `<|start_header_id|>`. By default a tokenizer turns such a string
into the special token's id wherever it occurs, so a response could end the user turn, open an assistant turn
and pre-fill a verdict.

- `render()` returns a `Rendered`: the exact text the chat template produces (byte-identical to
  `apply_chat_template(..., tokenize=False)`), plus the spans where the template itself wrote a special token.
  It renders with each special-token string inside a message replaced by a placeholder the template cannot
  confuse with one of its own tokens, then puts the original strings back, outside those spans.
- `encode()` turns only those spans into special-token ids; the text between them is tokenized with
  `split_special_tokens=True`. A plain `str` has no such spans: all of it is plain text. Both engines and the
  training objectives tokenize through `encode`, so they see the same ids.

For byte-level BPE tokenizers (Llama-3, Qwen, SmolLM2) the ids are those of the whole text tokenized at once
whenever no message contains a special-token string: a special token is a hard boundary for such tokenizers.
"""

from __future__ import annotations

import functools
import hashlib
import re


class Rendered(str):
    """Prompt text plus `special`: sorted (start, end) spans where the chat template wrote a special token.

    Concatenation keeps the spans: text appended to a Rendered (a target, `<answer>\\n`) is plain text unless it
    is itself Rendered. Any other string operation returns a plain `str`, i.e. text without special tokens."""

    special: tuple[tuple[int, int], ...]

    def __new__(cls, text: str, special=()):
        obj = super().__new__(cls, text)
        obj.special = tuple(special)
        return obj

    def __add__(self, other):
        if not isinstance(other, str):
            return NotImplemented
        n = len(self)
        extra = tuple((a + n, b + n) for a, b in getattr(other, "special", ()))
        return Rendered(str.__add__(self, other), self.special + extra)

    def __radd__(self, other):
        if not isinstance(other, str):
            return NotImplemented
        n = len(other)
        return Rendered(str.__add__(other, self), tuple((a + n, b + n) for a, b in self.special))


def special_strings(tokenizer) -> tuple[str, ...]:
    """The tokenizer's special tokens (added tokens marked special), longest first."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    names = {t.content for t in added.values() if getattr(t, "special", False)}
    names.update(getattr(tokenizer, "all_special_tokens", []) or [])
    return tuple(sorted((n for n in names if n), key=lambda s: (-len(s), s)))


@functools.lru_cache(maxsize=32)
def _pattern(names: tuple[str, ...]) -> re.Pattern | None:
    return re.compile("|".join(re.escape(n) for n in names)) if names else None


def _special_re(tokenizer) -> re.Pattern | None:
    return _pattern(special_strings(tokenizer))


def render(tokenizer, messages: list[dict]) -> Rendered:
    """Messages → the model's prompt text through its chat template, generation prompt added, as a `Rendered`
    whose special spans are the template's own special tokens only. Without a chat template: `role: content`
    lines and no special tokens at all."""
    if not getattr(tokenizer, "chat_template", None):
        return Rendered("".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: ")
    spec = _special_re(tokenizer)
    originals: list[str] = []
    # The placeholder's key is a hash of every message: no message can contain it (it would contain its own hash).
    key = hashlib.sha256("\x1f".join(str(m["content"]) for m in messages).encode("utf-8")).hexdigest()[:16]

    def hide(m: re.Match) -> str:
        originals.append(m.group(0))
        return f"\ufdd0{key}:{len(originals) - 1}\ufdd1"

    safe = [{**m, "content": spec.sub(hide, m["content"]) if spec else m["content"]} for m in messages]
    text = tokenizer.apply_chat_template(safe, tokenize=False, add_generation_prompt=True)
    holder = re.escape(f"\ufdd0{key}:") + r"(\d+)" + "\ufdd1"
    both = re.compile(holder if spec is None else f"{holder}|{spec.pattern}")
    out, spans, pos, n = [], [], 0, 0
    for m in both.finditer(text):
        out.append(text[pos:m.start()])
        n += m.start() - pos
        piece = originals[int(m.group(1))] if m.group(1) is not None else m.group(0)
        if m.group(1) is None:
            spans.append((n, n + len(piece)))
        out.append(piece)
        n += len(piece)
        pos = m.end()
    out.append(text[pos:])
    return Rendered("".join(out), spans)


def _plain(tokenizer, text: str) -> list[int]:
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of `text` with no BOS/EOS added: special-token ids only at a `Rendered`'s special spans, every
    other character tokenized as plain text (a special-token string there becomes ordinary tokens)."""
    ids: list[int] = []
    pos = 0
    for a, b in getattr(text, "special", ()):
        ids += _plain(tokenizer, text[pos:a])
        ids.append(tokenizer.convert_tokens_to_ids(text[a:b]))
        pos = b
    return ids + _plain(tokenizer, text[pos:])
