"""prove: sample k proofs per labeled pair from the prover π_ψ, keep the best by Eq. 5, reform it into a rationale.

For a pair s with label l (gold, or a pseudo-label from `self-label`), the prover samples k proofs z given
(s, l). Each proof that has all three sections (Feedback, Comparison, Conclusion) is scored with Eq. 5:

    proof_score(z) = −log π(z | s, l) / log π(z)

where log π(z | s, l) is the proof's summed log-probability under the prover prompt with the pair and label,
and log π(z) is the same proof scored under the EMPTY context `prompts.unconditional_messages()` (the prover's
system turn and an empty user turn). Both logs are negative, so the score is negative; higher is better: a
proof likely given this pair and label but unlikely on its own is specific, not boilerplate. The best proof is
reformed (`prompts.proof_to_rationale`) into the record's `rationale`. A proof missing a section is dropped and
counted; a pair with no usable proof (or no label) is written to the `skipped/` part with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import runner
from ..core import config, prompts, readers, shards
from ..core.errors import GramrError

if TYPE_CHECKING:
    from ..recipe import Config


@dataclass
class ProveConfig:
    prover: str = ""                # the prover model π_ψ (a `gramr2 prover-train` output); --prover
    k: int = 4                      # proofs sampled per pair (paper: k not stated)
    temperature: float = 0.8        # paper: not stated
    top_p: float = 1.0              # paper: not stated
    max_new_tokens: int = 160       # a proof is ~3 short paragraphs (paper: not stated)
    keep_candidates: bool = False   # all k proofs with their Eq. 5 terms in meta.proof.candidates

    def check(self) -> list[str]:
        """Problems of this section (keys relative to `prove`). The prover itself is given at run time
        (`--prover`), so an empty `prover` is not a problem of the recipe."""
        return [*config.at_least("k", self.k, 1), *config.at_least("temperature", self.temperature, 0),
                *config.within("top_p", self.top_p, 0.0, 1.0, open_low=True),
                *config.at_least("max_new_tokens", self.max_new_tokens, 1)]


def proof_score(logp_cond: float, logp_uncond: float) -> float:
    """Eq. 5: −log π(z|s,l) / log π(z). Both logs are ≤ 0, so the score is ≤ 0 and higher is better.

    log π(z) = 0 (a proof of probability 1 on its own, i.e. empty) gives −inf: such a proof carries nothing.
    """
    if logp_uncond == 0.0:
        return float("-inf")
    return -logp_cond / logp_uncond


def prover_prompts(tokenizer, rec: dict) -> tuple[str, str]:
    """(conditional prompt for π(z|s,l), unconditional prompt for π(z)) of one labeled record."""
    cond = prompts.render(tokenizer, prompts.prover_messages(rec["prompt"], rec["response_a"], rec["response_b"],
                                                            rec["label"]))
    return cond, prompts.render(tokenizer, prompts.unconditional_messages())


def pick(texts: list[str], logp_cond: dict[int, float], logp_uncond: dict[int, float]
         ) -> tuple[int | None, list[dict]]:
    """The index of the best parseable proof by Eq. 5 (first on ties; None when none parses) and one row per
    candidate: text, parseable, problem, and for parseable ones logp_cond, logp_uncond, score."""
    rows, best, best_score = [], None, None
    for i, t in enumerate(texts):
        row: dict = {"text": t, "parseable": i in logp_cond, "problem": None}
        if i in logp_cond:
            s = proof_score(logp_cond[i], logp_uncond[i])
            row.update(logp_cond=logp_cond[i], logp_uncond=logp_uncond[i], score=s)
            if best_score is None or s > best_score:
                best, best_score = i, s
        rows.append(row)
    return best, rows


def prove_batch(engine, batch: list[dict], cfg: Config, seed: int) -> list[tuple[dict | None, str | None, dict]]:
    """For each labeled record: (record with the best proof as rationale, or None; skip reason; stats).

    One `generate` call for the batch, one `score` call for all parseable candidates in both contexts."""
    pc = cfg.prove
    tok = engine.tokenizer
    ctx = [prover_prompts(tok, r) for r in batch]
    gens = engine.generate([c for c, _ in ctx], n=pc.k, temperature=pc.temperature,
                           max_new_tokens=pc.max_new_tokens, seed=seed, top_p=pc.top_p)
    texts = [[g.text for g in gs] for gs in gens]
    rationales: dict[tuple[int, int], str] = {}
    problems: dict[tuple[int, int], str] = {}
    for i, ts in enumerate(texts):
        for j, t in enumerate(ts):
            try:
                rationales[(i, j)] = prompts.proof_to_rationale(t)
            except GramrError as e:
                problems[(i, j)] = e.message
    keys = sorted(rationales)
    # Eq. 5's two terms for every parseable proof: numerator under (s, l), denominator under the empty context.
    scores = engine.score([ctx[i][0] for i, _ in keys] + [ctx[i][1] for i, _ in keys],
                          [texts[i][j] for i, j in keys] * 2) if keys else []
    cond = dict(zip(keys, scores[:len(keys)]))
    uncond = dict(zip(keys, scores[len(keys):]))
    results = []
    for i, rec in enumerate(batch):
        best, rows = pick(texts[i], {j: cond[(i, j)] for j in range(len(texts[i])) if (i, j) in cond},
                          {j: uncond[(i, j)] for j in range(len(texts[i])) if (i, j) in uncond})
        for j, row in enumerate(rows):
            row["problem"] = problems.get((i, j))
        stats = {"candidates": len(rows), "unparseable": sum(not r["parseable"] for r in rows)}
        if best is None:
            results.append((None, "no_parseable_proof", stats))
            continue
        out = dict(rec)
        meta = dict(rec.get("meta") or {})
        info = {"score": rows[best]["score"], "logp_cond": rows[best]["logp_cond"],
                "logp_uncond": rows[best]["logp_uncond"], "index": best, "k": len(rows),
                "parseable": len(rows) - stats["unparseable"], "prover": pc.prover}
        if rec.get("rationale") is not None:
            info["replaced_rationale"] = rec["rationale"]
        if pc.keep_candidates:
            info["candidates"] = rows
        meta["proof"] = info
        out["rationale"] = rationales[(i, best)]
        out["meta"] = meta
        results.append((out, None, stats))
    return results


def run(cfg: Config, inputs: list[Path], output: Path | str, *, engine=None, overwrite: bool = False,
        shard_index: int | None = None, num_shards: int | None = None, progress: bool = True) -> shards.Summary:
    """Prove every labeled pair of `inputs` with `cfg.prove.prover`; write proved pairs to `output` and pairs
    without a label or a usable proof to `output/skipped/` with the reason.

    Raises GramrError when no prover is given, k < 1, or for bad inputs."""
    pc = cfg.prove
    config.ensure(pc, "prove.")
    if engine is None and not pc.prover:
        raise GramrError("prove needs a prover model", hint="pass --prover DIR (a 'gramr2 prover-train' output) "
                                                            "or set prove.prover in the recipe")
    resolved = config.sections(cfg, "seed", "generate", "prove")
    with runner.open_output(output, stage="prove", config=resolved, inputs=inputs, overwrite=overwrite,
                            shard_index=shard_index, num_shards=num_shards,
                            provenance={"model": pc.prover, "seed": cfg.seed},
                            batch_size=cfg.generate.batch_size) as out:
        recs, todo = runner.read_left(out, inputs)
        def skip(rec: dict, reason: str) -> None:
            if out.to_stdout:   # stdout carries proved pairs only
                out.skip(reason)
            else:
                out.write(rec, part="skipped", reasons=[reason])

        for r in todo:  # unlabeled pairs are settled without the model
            if r["label"] is None:
                skip(r, "no_label")
        labeled = [r for r in recs if r["label"] is not None]

        def proved(rec: dict, result: tuple[dict | None, str | None, dict]) -> dict | None:
            rec_out, reason, stats = result
            out.counts["candidates"] += stats["candidates"]
            out.counts["candidates_unparseable"] += stats["unparseable"]
            if rec_out is None:
                skip(rec, reason)
            return rec_out

        runner.run_model(out, cfg, labeled, lambda eng, batch: prove_batch(eng, batch, cfg, cfg.seed), proved,
                         engine=engine, model=pc.prover, batch_size=cfg.generate.batch_size, progress_on=progress,
                         desc="prove")
        if not out.to_stdout and out.part_path().exists():
            scores = [r["meta"]["proof"]["score"] for r in readers.read([out.part_path()])]
            if scores:
                out.metrics["mean_proof_score"] = sum(scores) / len(scores)
    return out.summary()
