"""prove: sample k proofs per labeled pair from the prover π_ψ, keep the best by Eq. 5, reform it into a rationale.

For a pair s with label l (gold, or a pseudo-label from `self-label`), the prover samples k proofs z given
(s, l). Each proof that has all three sections (Feedback, Comparison, Conclusion) is scored with Eq. 5:

    proof_score(z) = −log π(z | s, l) / log π(z)

where log π(z | s, l) is the proof's summed log-probability under the prover prompt with the pair and label,
and log π(z) is the same proof scored under the EMPTY context `prompts.unconditional_messages()` (the prover's
system turn and an empty user turn). Both logs are negative, so the score is negative; higher is better: a
proof likely given this pair and label but unlikely on its own is specific, not boilerplate. The best proof is
reformed (`prompts.proof_to_rationale`) into the record's `rationale`. A proof missing a section is dropped and
counted; so is one that contradicts its pair or label (`core/claims.py`, ours; `prove.check_claims`). A pair with
no usable proof (or no label) is written to the `skipped/` part with its reason; so is its twin (the same pair in
the other order, `synth.both_orders`) when it has one (`prove.twins_together`, ours): a proved set that keeps one
order of some pairs gives a reward model a position prior to learn.

log π(z | s, l) is the sum of the sampled tokens' log-probabilities (temperature 1, before sampling settings) when
the engine reports it (`Generation.body_logprob`: vllm in process, hf), else one teacher-forced scoring pass; the
two agree up to the tokenization of the decoded text (tests/engines). Identical candidates are scored once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import runner
from ..core import claims, config, prompts, readers, records, shards
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
    check_claims: bool = True       # ours: drop a proof that contradicts its pair or label before Eq. 5 (core/claims.py)
    twins_together: bool = True     # ours: a pair given in both orders is proved in both or skipped in both
                                    # (within one shard: --num-shards splits by id, so twins may part)

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
    """The index of the best scored proof by Eq. 5 (first on ties; None when none was scored) and one row per
    candidate: text, parseable (= scored here), problem, and for scored ones logp_cond, logp_uncond, score."""
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


def eq5_terms(engine, ctx: list[tuple[str, str]], texts: list[list[str]], gens: list[list], keys: list
              ) -> tuple[dict, dict]:
    """({key: log π(z|s,l)}, {key: log π(z)}) for the candidates `keys` ((pair index, sample index)).

    The numerator comes from the sampling pass where the engine reports it (`body_logprob`), else from scoring;
    each distinct (context, text) is scored once."""
    cond = {k: gens[k[0]][k[1]].body_logprob for k in keys if gens[k[0]][k[1]].body_logprob is not None}
    asks = [(ctx[i][0], texts[i][j]) for i, j in keys if (i, j) not in cond] + \
           [(ctx[i][1], texts[i][j]) for i, j in keys]
    distinct = list(dict.fromkeys(asks))
    got = dict(zip(distinct, engine.score([p for p, _ in distinct], [t for _, t in distinct]) if distinct else []))
    for i, j in keys:
        cond.setdefault((i, j), got.get((ctx[i][0], texts[i][j])))
    return cond, {(i, j): got[(ctx[i][1], texts[i][j])] for i, j in keys}


def prove_batch(engine, batch: list[dict], cfg: Config, seed: int) -> list[tuple[dict | None, str | None, dict]]:
    """For each labeled record: (record with the best proof as rationale, or None; skip reason; stats).

    One `generate` call for the batch, one `score` call for the parseable, consistent candidates (`eq5_terms`)."""
    pc = cfg.prove
    tok = engine.tokenizer
    ctx = [prover_prompts(tok, r) for r in batch]
    gens = engine.generate([c for c, _ in ctx], n=pc.k, temperature=pc.temperature,
                           max_new_tokens=pc.max_new_tokens, seed=seed, top_p=pc.top_p)
    texts = [[g.text for g in gs] for gs in gens]
    rationales: dict[tuple[int, int], str] = {}
    problems: dict[tuple[int, int], str] = {}
    inconsistent: set[tuple[int, int]] = set()
    for i, ts in enumerate(texts):
        for j, t in enumerate(ts):
            try:
                rationales[(i, j)] = prompts.proof_to_rationale(t)
            except GramrError as e:
                problems[(i, j)] = e.message
                continue
            found = claims.problems(rationales[(i, j)], batch[i]["response_a"], batch[i]["response_b"],
                                    batch[i]["label"]) if pc.check_claims else []
            if found:
                problems[(i, j)] = ", ".join(found)
                inconsistent.add((i, j))
                del rationales[(i, j)]
    keys = sorted(rationales)
    cond, uncond = eq5_terms(engine, ctx, texts, gens, keys)
    results = []
    for i, rec in enumerate(batch):
        best, rows = pick(texts[i], {j: cond[(i, j)] for j in range(len(texts[i])) if (i, j) in cond},
                          {j: uncond[(i, j)] for j in range(len(texts[i])) if (i, j) in uncond})
        for j, row in enumerate(rows):
            row["problem"] = problems.get((i, j))
            if (i, j) in inconsistent:
                row.update(parseable=True, consistent=False)
        bad = sum((i, j) in inconsistent for j in range(len(rows)))
        stats = {"candidates": len(rows), "unparseable": sum(not r["parseable"] for r in rows),
                 "inconsistent": bad}
        if best is None:
            results.append((None, "no_consistent_proof" if bad else "no_parseable_proof", stats))
            continue
        out = dict(rec)
        meta = dict(rec.get("meta") or {})
        info = {"score": rows[best]["score"], "logp_cond": rows[best]["logp_cond"],
                "logp_uncond": rows[best]["logp_uncond"], "index": best, "k": len(rows),
                "parseable": len(rows) - stats["unparseable"], "consistent": len(rows) - stats["unparseable"] - bad,
                "prover": pc.prover}
        if rec.get("rationale") is not None:
            info["replaced_rationale"] = rec["rationale"]
        if pc.keep_candidates:
            info["candidates"] = rows
        meta["proof"] = info
        out["rationale"] = rationales[(i, best)]
        out["meta"] = meta
        results.append((out, None, stats))
    return skip_lone_twins(batch, results) if pc.twins_together else results


def skip_lone_twins(batch: list[dict], results: list[tuple]) -> list[tuple]:
    """`results` with each proved record whose twin in `batch` got no proof turned into a `twin_not_proved` skip."""
    failed = {records.twin_key(r) for r, (out, _, _) in zip(batch, results) if out is None}
    return [(None, "twin_not_proved", stats) if out is not None and records.twin_key(r) in failed else
            (out, reason, stats) for r, (out, reason, stats) in zip(batch, results)]


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
        if pc.twins_together:   # both orders of a pair in one batch (`skip_lone_twins` looks within a batch)
            labeled = records.twins_adjacent(labeled)

        def proved(rec: dict, result: tuple[dict | None, str | None, dict]) -> dict | None:
            rec_out, reason, stats = result
            out.counts["candidates"] += stats["candidates"]
            out.counts["candidates_unparseable"] += stats["unparseable"]
            out.counts["candidates_inconsistent"] += stats["inconsistent"]
            if rec_out is None:
                skip(rec, reason)
            return rec_out

        runner.run_model(out, cfg, labeled, lambda eng, batch: prove_batch(eng, batch, cfg, cfg.seed), proved,
                         engine=engine, model=pc.prover, batch_size=cfg.generate.batch_size, progress_on=progress,
                         desc="prove", group=records.twin_key if pc.twins_together else None)
        if not out.to_stdout and out.part_path().exists():
            scores = [r["meta"]["proof"]["score"] for r in readers.read([out.part_path()])]
            if scores:
                out.metrics["mean_proof_score"] = sum(scores) / len(scores)
    return out.summary()
