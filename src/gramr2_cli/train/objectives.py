"""Training objectives (DESIGN §5): record → `input_ids`/`labels`, built once; the label loss; the collator.

Every builder renders a prompt and a target, tokenizes prompt and prompt+target, checks that the prompt's
tokens are a prefix of the whole (else the mask would be wrong: raise), and masks the prompt with -100.
Nothing is ever truncated: an example longer than `max_length` is skipped and counted by `build_dataset`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ..core import prompts
from ..core.errors import GramrError
from ..core.rendering import encode

IGNORE = -100
PAIRGEN_TEMPLATE = "[Response A]\n{a}\n[Response B]\n{b}"   # GRAM v1 pair generation target (paper: not stated)


@dataclass
class Built:
    """One tokenized example, or the reason it cannot be one (`skip`)."""
    input_ids: list[int] | None = None
    labels: list[int] | None = None
    skip: str | None = None          # reason to drop the record, counted in the summary
    note: str | None = None          # a counted remark on a kept record (e.g. answer_only)


def tokenize_pair(tok, prompt_text: str, target_text: str, where: str = "record", eos: bool = True
                  ) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of prompt+target(+eos) with the prompt masked. Tokenized as the engines do
    (`engines.encode`): special tokens only where the chat template wrote them, so a prompt, response or
    rationale holding `<|im_end|>` trains as plain text; eos is appended as its id (when the tokenizer has one). Raises GramrError when the
    prompt's tokens are not a prefix of prompt+target's tokens (a merge across the boundary would mislabel
    tokens)."""
    p = encode(tok, prompt_text)
    full = encode(tok, prompt_text + target_text) + ([tok.eos_token_id] if eos and tok.eos_token_id is not None
                                                     else [])
    if full[:len(p)] != p:
        raise GramrError(f"{where}: the prompt's tokens are not a prefix of prompt+target's tokens",
                         hint="the tokenizer merges across the prompt/target boundary; end the prompt with a "
                              "newline or a special token")
    return full, [IGNORE] * len(p) + full[len(p):]


def _judge_prompt(tok, rec: dict, version: str) -> str:
    return prompts.render(tok, prompts.judge_messages(rec["prompt"], rec["response_a"], rec["response_b"], version))


def build_reasoning(tok, rec: dict, version: str) -> Built:
    """Reasoning SFT, Eq. 2: -log π(z|s) - log π(l|s,z); prompt tokens masked (-100).

    Target = `<think>rationale</think><answer>l</answer>` + eos, the rationale's section names spelled as the
    prompt version's template spells them (`gram-rr`: "Comparision"). A record without a rationale trains the
    answer only (`note="answer_only"`, counted)."""
    if rec["label"] is None:
        return Built(skip="no_label")
    target = prompts.judgment_text(prompts.respell(rec["rationale"], version), rec["label"])
    ids, labels = tokenize_pair(tok, _judge_prompt(tok, rec, version), target, f"record {rec['id']}")
    return Built(ids, labels, note=None if rec["rationale"] else "answer_only")


def build_prover(tok, rec: dict, version: str) -> Built:
    """Preference proving, Eq. 4: -log π_ψ(z | s, l); input is the pair and its label, target the proof + eos."""
    if rec["label"] is None:
        return Built(skip="no_label")
    if not rec["rationale"]:
        return Built(skip="no_rationale")
    try:
        proof = prompts.rationale_to_proof(rec["rationale"])
    except GramrError:
        return Built(skip="rationale_sections_missing")
    msgs = prompts.prover_messages(rec["prompt"], rec["response_a"], rec["response_b"], rec["label"])
    ids, labels = tokenize_pair(tok, prompts.render(tok, msgs), proof, f"record {rec['id']}")
    return Built(ids, labels)


def answer_token_ids(tok) -> tuple[int, int]:
    """Token ids of "A" and "B" as they follow `prompts.ANSWER_PREFIX`. Raises GramrError if not single tokens."""
    base = tok(prompts.ANSWER_PREFIX, add_special_tokens=False)["input_ids"]
    out = []
    for letter in ("A", "B"):
        ids = tok(prompts.ANSWER_PREFIX + letter, add_special_tokens=False)["input_ids"]
        if ids[:len(base)] != base or len(ids) != len(base) + 1:
            raise GramrError(f"the tokenizer does not encode the verdict {letter!r} as one token after the "
                             "answer prefix; the label objective needs that")
        out.append(ids[-1])
    return out[0], out[1]


def build_label(tok, rec: dict, version: str) -> Built:
    """Generative RM baseline / GRAM v1 fine-tuning: CE over the two answer tokens at the answer position.

    input = judge prompt + `<answer>\\n` + verdict token; labels are -100 except the verdict token, so the shifted
    logits at the answer position predict it. `label_loss` restricts the softmax to {A, B}."""
    if rec["label"] is None:
        return Built(skip="no_label")
    ids, labels = tokenize_pair(tok, _judge_prompt(tok, rec, version) + prompts.ANSWER_PREFIX, rec["label"],
                                f"record {rec['id']}", eos=False)
    if sum(1 for x in labels if x != IGNORE) != 1:
        raise GramrError(f"record {rec['id']}: the verdict is not one token after the answer prefix")
    return Built(ids, labels)


def build_pairgen(tok, rec: dict, version: str) -> Built:
    """GRAM v1 pre-training: -log π([y_a, y_b] | x) on unlabeled pairs (labels are ignored)."""
    prompt = prompts.render(tok, [{"role": "user", "content": rec["prompt"]}])
    target = PAIRGEN_TEMPLATE.format(a=rec["response_a"], b=rec["response_b"])
    ids, labels = tokenize_pair(tok, prompt, target, f"record {rec['id']}")
    return Built(ids, labels)


OBJECTIVES: dict[str, Callable[..., Built]] = {
    "reasoning": build_reasoning, "prover": build_prover, "label": build_label, "pairgen": build_pairgen,
}


def get(name: str) -> Callable[..., Built]:
    if name not in OBJECTIVES:
        raise GramrError(f"train.objective: unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def build_dataset(tok, recs, objective: str, max_length: int, version: str = "gramr2-v1"
                  ) -> tuple[list[dict], Counter, Counter]:
    """Tokenize records for `objective`: (examples, skipped-by-reason, notes). Examples longer than
    `max_length` are skipped (`too_long`), never truncated; rows with no target token are dropped (`fully_masked`)."""
    build = get(objective)
    rows, skipped, notes = [], Counter(), Counter()
    for rec in recs:
        b = build(tok, rec, version)
        if b.skip:
            skipped[b.skip] += 1
            continue
        if len(b.input_ids) > max_length:
            skipped["too_long"] += 1
            continue
        if all(x == IGNORE for x in b.labels):
            skipped["fully_masked"] += 1
            continue
        if b.note:
            notes[b.note] += 1
        rows.append({"id": rec["id"], "input_ids": b.input_ids, "labels": b.labels})
    return rows, skipped, notes


# ---------------------------------------------------------------- loss and collator

def torch_label_smoothing(eps: float) -> float:
    """The paper's ε means targets (1-ε, ε) over {A, B}. torch's `label_smoothing=s` gives (1-s+s/2, s/2) for
    two classes, so s = 2ε."""
    return 2.0 * eps


def label_loss(logits, labels, a_id: int, b_id: int, eps: float):
    """GRAM v1 / GenRM label loss: mean CE over {A, B} at each verdict position, targets (1-ε, ε).

    `logits` [B, T, V], `labels` [B, T] with exactly one non-ignored (verdict) token per row."""
    shift_logits, shift_labels = logits[:, :-1, :], labels[:, 1:]
    pos = shift_labels != IGNORE
    return verdict_loss(shift_logits[pos], shift_labels[pos], a_id, b_id, eps)


def verdict_loss(logits, targets, a_id: int, b_id: int, eps: float):
    """Mean CE over {A, B}, targets (1-ε, ε): `logits` [N, V] at the N verdict positions, `targets` [N] the
    verdict token ids."""
    import torch.nn.functional as F

    two = logits[:, [a_id, b_id]].float()                       # [N, 2]
    target = (targets == b_id).long()                            # A → 0, B → 1
    return F.cross_entropy(two, target, label_smoothing=torch_label_smoothing(eps))


@dataclass
class Collator:
    """Pads only (right side): input_ids with `pad_id`, labels with -100, attention_mask 0 on pads."""
    pad_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        n = max(len(r["input_ids"]) for r in rows)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            n = (n + m - 1) // m * m
        ids = torch.full((len(rows), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), n), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), n), dtype=torch.long)
        for i, r in enumerate(rows):
            k = len(r["input_ids"])
            ids[i, :k] = torch.tensor(r["input_ids"])
            labels[i, :k] = torch.tensor(r["labels"])
            mask[i, :k] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}
