"""The `hf` engine: batched transformers generation and teacher-forced scoring (the reference engine).

Prompts are sorted by token length and batched (left padding, explicit position ids, KV cache); a prompt's `n`
samples share one prefill (the cache is repeated n times) and rows leave the batch as they stop. Each sample
draws its random numbers from its own generator seeded by `row_seed(seed, prompt, j)`, so a prompt's samples
do not depend on the batch size or on the other prompts in the call (inverse-CDF sampling, one uniform per step).
"""

from __future__ import annotations

import dataclasses

import torch

from ..core import models
from ..core.errors import GramrError
from . import (
    Generation,
    ab_normalise,
    answer_position,
    check_sampling,
    encode,
    finish,
    forced_answer_probs,
    forget,
    row_seed,
    stop_ids,
)

LOGIT_BUDGET = 2048   # rows × kept positions per scoring forward (× vocab × 4 bytes of logits)
GQA_SDPA_MODELS = ("llama", "qwen2", "qwen3", "mistral")   # plain causal attention, no bias/sinks/softcap


def _gqa_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **_):
    """transformers' SDPA attention without `repeat_kv`. With a padding mask on CPU, transformers copies every
    layer's whole KV cache to repeat the grouped heads at each decoding step (44% of a batch-32 step on
    SmolLM2); `enable_gqa=True` gives the same numbers without the copy (1.7× faster decoding, measured)."""
    is_causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    is_causal = bool(query.shape[2] > 1 and attention_mask is None and is_causal)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling, is_causal=is_causal,
        enable_gqa=key.shape[1] != query.shape[1])
    return out.transpose(1, 2).contiguous(), None


def _use_gqa_sdpa(model) -> None:
    """Switch a CPU model of a plain-attention family from `sdpa` to `_gqa_sdpa` (registered once)."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    if (model.device.type != "cpu" or model.config.model_type not in GQA_SDPA_MODELS
            or model.config._attn_implementation != "sdpa"):
        return
    AttentionInterface.register("gramr2_gqa_sdpa", _gqa_sdpa)
    AttentionMaskInterface.register("gramr2_gqa_sdpa", sdpa_mask)
    model.set_attn_implementation("gramr2_gqa_sdpa")


class HFEngine:
    """Batched `transformers` engine. `batch_size` counts sequences per forward (prompts × samples)."""

    name = "hf"

    def __init__(self, model_path: str, dtype: str = "float32", device: str | None = None, batch_size: int = 16):
        self.model_path = str(model_path)
        self.dtype = dtype
        self.tokenizer = models.load_tokenizer(self.model_path)
        self.model = models.load_model(self.model_path, dtype, device)
        _use_gqa_sdpa(self.model)
        self.device = self.model.device
        self.context_length = getattr(self.model.config, "max_position_embeddings", None)
        self.batch_size = max(1, int(batch_size))
        self.stops = stop_ids(self.tokenizer, self.model.generation_config.eos_token_id)
        self.pad_id = self.tokenizer.pad_token_id
        # "A"/"B" with the whitespace a tokenizer may merge into them: their log-probs are kept at every step so
        # the answer-token probability needs no second pass in the usual case.
        cands = {answer_position(self.tokenizer, encode(self.tokenizer, f"<answer>{ws}A"))
                 for ws in ("", " ", "\n", "\n\n", "  ")} - {None}
        self.cand_ids = sorted({i for _, a, b in cands for i in (a, b)})
        self._cand_col = {t: c for c, t in enumerate(self.cand_ids)}

    # ------------------------------------------------------------ generation

    @torch.inference_mode()
    def generate(self, prompts: list[str], *, n: int = 1, temperature: float = 0.0, max_new_tokens: int = 128,
                 seed: int = 0, top_p: float = 1.0, answer_token_probs: bool = False,
                 ignore_eos: bool = False) -> list[list[Generation]]:
        """`n` generations per prompt, in prompt order. Temperature 0 is greedy (the n copies are identical and
        decoded once). `ignore_eos` forces `max_new_tokens` tokens (benchmarks). Raises GramrError for bad
        sampling settings."""
        check_sampling(n, temperature, top_p, max_new_tokens)
        reps = 1 if temperature == 0 else n
        ids = [encode(self.tokenizer, p) for p in prompts]
        if any(not x for x in ids):
            raise GramrError("an empty prompt cannot be generated from")
        order = sorted(range(len(prompts)), key=lambda i: -len(ids[i]))
        per_batch = max(1, self.batch_size // reps)
        results: list[list[Generation]] = [[] for _ in prompts]
        for s in range(0, len(order), per_batch):
            chunk = order[s:s + per_batch]
            seeds = [[row_seed(seed, prompts[i], j) for j in range(reps)] for i in chunk]
            rows = self._generate_batch([ids[i] for i in chunk], seeds, reps, temperature, top_p,
                                        max_new_tokens, ignore_eos, answer_token_probs)
            for c, i in enumerate(chunk):
                gens = rows[c * reps:(c + 1) * reps]
                results[i] = gens if reps == n else [dataclasses.replace(gens[0]) for _ in range(n)]
        return results

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            input_ids[r, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[r, width - len(s):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        return input_ids.to(self.device), mask.to(self.device), pos.to(self.device)

    def _sample(self, logits: torch.Tensor, temperature: float, top_p: float, gens: list) -> torch.Tensor:
        """One token per row by inverse-CDF sampling with the row's own generator (batch-invariant draws)."""
        probs = torch.softmax(logits / temperature, dim=-1)
        index = None
        if top_p < 1.0:   # nucleus: the smallest set of most likely tokens whose mass reaches top_p
            probs, index = probs.sort(dim=-1, descending=True)
            probs = probs.masked_fill(probs.cumsum(-1) - probs >= top_p, 0.0)
        cdf = probs.cumsum(-1)
        u = torch.stack([torch.rand((), generator=g, device=self.device) for g in gens])
        choice = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1).contiguous(), right=True)
        choice = choice.clamp(max=cdf.shape[-1] - 1)
        return choice[:, 0] if index is None else index.gather(1, choice)[:, 0]

    def _generate_batch(self, prompt_ids, seeds, reps, temperature, top_p, max_new_tokens, ignore_eos,
                        want_ab) -> list[Generation]:
        input_ids, mask, pos = self._left_pad(prompt_ids)
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=pos, use_cache=True,
                         logits_to_keep=1)
        cache, logits = out.past_key_values, out.logits[:, -1].float()
        last_pos = pos[:, -1]
        if reps > 1:   # one prefill per prompt, then its samples fork from the same cache
            cache.batch_repeat_interleave(reps)
            logits, mask, last_pos = (t.repeat_interleave(reps, 0) for t in (logits, mask, last_pos))
        rows = len(prompt_ids) * reps
        gens = [torch.Generator(device=self.device).manual_seed(s) for ss in seeds for s in ss]
        alive = torch.arange(rows)
        toks: list[list[int]] = [[] for _ in range(rows)]
        lps: list[list[float]] = [[] for _ in range(rows)]
        cand: list[list[list[float]]] = [[] for _ in range(rows)]
        stops = torch.tensor(self.stops, device=self.device)
        cand_ids = torch.tensor(self.cand_ids, device=self.device, dtype=torch.long)
        for step in range(max_new_tokens):
            logp = torch.log_softmax(logits, dim=-1)
            if temperature == 0:
                nxt = logits.argmax(-1)
            else:
                nxt = self._sample(logits, temperature, top_p, [gens[r] for r in alive.tolist()])
            chosen = logp.gather(1, nxt[:, None])[:, 0].tolist()
            cand_lp = logp[:, cand_ids].tolist() if want_ab else None
            for c, (r, t) in enumerate(zip(alive.tolist(), nxt.tolist())):
                toks[r].append(t)
                lps[r].append(chosen[c])
                if want_ab:
                    cand[r].append(cand_lp[c])
            if step == max_new_tokens - 1:
                break
            if not ignore_eos:
                keep = ~torch.isin(nxt, stops)
                if not keep.any():
                    break
                if not keep.all():   # stopped rows leave the batch (and the cache)
                    idx = keep.nonzero()[:, 0]
                    cache.batch_select_indices(idx)
                    mask, last_pos, nxt = mask[idx], last_pos[idx], nxt[idx]
                    alive = alive[idx.cpu()]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            last_pos = last_pos + 1
            out = self.model(input_ids=nxt[:, None], attention_mask=mask, position_ids=last_pos[:, None],
                             past_key_values=cache, use_cache=True)
            cache, logits = out.past_key_values, out.logits[:, -1].float()
        stop_set = set(self.stops)
        result = []
        for r in range(rows):
            ab = self._ab_from_steps(prompt_ids[r // reps], toks[r], cand[r]) if want_ab else None
            result.append(finish(self.tokenizer, toks[r], lps[r], stop_set, ignore_eos, ab))
        return result

    def _ab_from_steps(self, prompt_ids, ids, cand_steps) -> tuple[float, float] | None:
        where = answer_position(self.tokenizer, ids)
        if where is None:
            return None
        k, a, b = where
        if a in self._cand_col and b in self._cand_col:
            row = cand_steps[k]
            return ab_normalise(row[self._cand_col[a]], row[self._cand_col[b]])
        la, lb = self._next_logprobs([prompt_ids + ids[:k]], [[a, b]])[0]
        return ab_normalise(la, lb)

    # ------------------------------------------------------------ teacher forcing

    @torch.inference_mode()
    def _next_logprobs(self, seqs: list[list[int]], token_sets: list[list[int]]) -> list[list[float]]:
        """log p(t | seq) for each t in token_sets[i], batched (the next-token distribution after each seq)."""
        out: list[list[float]] = [[] for _ in seqs]
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        for s in range(0, len(order), self.batch_size):
            chunk = order[s:s + self.batch_size]
            input_ids, mask, pos = self._left_pad([seqs[i] for i in chunk])
            logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=pos,
                                logits_to_keep=1).logits[:, -1].float()
            logp = torch.log_softmax(logits, dim=-1)
            for c, i in enumerate(chunk):
                out[i] = logp[c, token_sets[i]].tolist()
        return out

    def answer_probs(self, prompts: list[str], continuations: list[str]) -> list[tuple[float, float] | None]:
        """(P(A), P(B)) at the answer position of each forced continuation; None without `<answer>`."""
        return forced_answer_probs(self.tokenizer, self._next_logprobs, prompts, continuations)

    @torch.inference_mode()
    def score(self, prompts: list[str], continuations: list[str]) -> list[float]:
        """sum log p(continuation | prompt), teacher-forced: the prompt's and the continuation's tokens are
        encoded separately and concatenated (`engines.encode`). An empty continuation scores 0. Raises GramrError
        for an empty prompt or mismatched lengths."""
        if len(prompts) != len(continuations):
            raise GramrError(f"score: {len(prompts)} prompts but {len(continuations)} continuations")
        p_ids = [encode(self.tokenizer, p) for p in prompts]
        c_ids = [encode(self.tokenizer, c) for c in continuations]
        if any(not p for p in p_ids):
            raise GramrError("score: an empty prompt has no next-token distribution; render it first")
        scores = [0.0] * len(prompts)
        order = sorted((i for i in range(len(prompts)) if c_ids[i]), key=lambda i: -len(p_ids[i]) - len(c_ids[i]))
        s = 0
        while s < len(order):
            keep = len(c_ids[order[s]]) + 1
            chunk = [order[s]]
            while (s + len(chunk) < len(order) and len(chunk) < self.batch_size
                   and (len(chunk) + 1) * max(keep, len(c_ids[order[s + len(chunk)]]) + 1) <= LOGIT_BUDGET):
                keep = max(keep, len(c_ids[order[s + len(chunk)]]) + 1)
                chunk.append(order[s + len(chunk)])
            s += len(chunk)
            input_ids, mask, pos = self._left_pad([p_ids[i] + c_ids[i] for i in chunk])
            logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=pos,
                                logits_to_keep=keep).logits.float()
            norm = torch.logsumexp(logits, dim=-1)   # kept position q predicts kept position q + 1
            for c, i in enumerate(chunk):
                cont = c_ids[i]
                first = keep - len(cont) - 1
                rows = torch.arange(first, first + len(cont), device=logits.device)
                picked = logits[c, rows, torch.tensor(cont, device=logits.device)] - norm[c, rows]
                scores[i] = float(picked.sum())
        return scores

    def close(self) -> None:
        """Free the model and drop the engine from `load_engine`'s cache."""
        forget(self)
        self.model = None
