"""Training batches without wasted compute: the loss on target positions only, and optional padding-free packing.

Loss on targets only (always): most tokens of a judge example are prompt (masked, -100), yet a plain causal-LM
forward computes the vocabulary logits at every position (SmolLM2: 49,152 × T floats, about a fifth of the
FLOPs). `target_loss` passes `logits_to_keep` = the positions whose next token is a target, so the output layer
and the cross-entropy run on those alone — the same value as the model's own loss (tested to 1e-5). Right-padded
batches run without their attention mask (causal attention already hides the pads that follow each row), which
takes SDPA's causal fast path.

Packing (`train.packing: true`, ours): a micro-batch's examples are concatenated into one row `[1, Σ len]`, with
`position_ids` restarting at 0 for each example and no attention mask. transformers 5.19
(`masking_utils.find_packed_sequence_indices`, used by `create_causal_mask` for SDPA/eager when
`attention_mask is None` and there is no KV cache) reads the restarts and builds a block-diagonal causal mask, so
no token attends across examples (tested: per-example losses packed = alone within 1e-4); `flash_attention_2` on
a GPU reads the same position ids without any mask. The model must run with `use_cache=False` (a cache disables
that detection): `target_loss` passes it. On a CPU, SDPA computes the whole (Σ len)² score matrix under that
mask, which costs more than the padding it saves at judge-prompt lengths (benchmarks/README.md): off by default.
"""

from __future__ import annotations

from dataclasses import dataclass

from .objectives import IGNORE, verdict_loss


@dataclass
class PackedCollator:
    """One row of concatenated examples: input_ids, labels (each example's first label -100: no example predicts
    its first token from the previous example's last), position_ids restarting per example; no attention mask."""

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        ids, labels, pos = [], [], []
        for r in rows:
            ids.extend(r["input_ids"])
            labels.append(IGNORE)
            labels.extend(r["labels"][1:])
            pos.extend(range(len(r["input_ids"])))
        return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]),
                "position_ids": torch.tensor([pos])}


def target_positions(labels):
    """Sequence indices q whose next token is a target in some row (`labels[:, q + 1] != -100`)."""
    return (labels[:, 1:] != IGNORE).any(0).nonzero().squeeze(-1)


def target_loss(model, inputs: dict, num_items_in_batch=None, label_ids: tuple[int, int] | None = None,
                eps: float = 0.0):
    """(loss, outputs) of a packed or right-padded batch, with the output layer run only at target positions.

    A right-padded batch is run WITHOUT its attention mask: pads only follow each row's tokens, and the causal
    mask already keeps every real token from seeing what follows it, so real tokens' outputs are unchanged, and
    attention takes its causal fast path instead of a materialised mask. (The mask stays in the batch for the
    Trainer's non-padding token count.)

    LM objectives (Eq. 2 reasoning, Eq. 4 prover, pairgen): summed token cross-entropy divided by
    `num_items_in_batch` (the Trainer's count of target tokens over the accumulated batch, so the loss is already
    scaled for gradient accumulation) or by this batch's count when None — the value the model's own loss gives.
    Label objective (`label_ids` = the A/B token ids): `objectives.verdict_loss`, a per-micro-batch mean."""
    import torch.nn.functional as F

    labels = inputs["labels"]
    keep = target_positions(labels)
    fwd = {k: v for k, v in inputs.items() if k not in ("labels", "attention_mask")}
    out = model(**fwd, logits_to_keep=keep, use_cache=False)
    logits = out.logits.flatten(0, 1)                       # [B·K, V]
    target = labels[:, keep + 1].flatten()                  # -100 where that row has no target there
    if label_ids is not None:
        hit = target != IGNORE
        return verdict_loss(logits[hit], target[hit], *label_ids, eps), out
    total = F.cross_entropy(logits.float(), target, ignore_index=IGNORE, reduction="sum")
    n = num_items_in_batch if num_items_in_batch is not None else (target != IGNORE).sum()
    return total / n, out
