"""rank: pairwise verdicts (voting@k, both orders) and listwise best-of-n (knockout, tournament, full).

`rank pairs` judges pair records and adds `meta.judgment` (DESIGN §2): votes, majority label, `p_a` = P(A better)
averaged over samples and presentation orders, and whether the two orders agreed.

`rank list` picks the best of a prompt's n candidates. The selection algorithms are pure generators over
candidate indices: each yields a list of comparisons `(i, j)` ("is i better than j?") and receives one
P(first better) per comparison. `drive()` advances many records together, so one engine call carries the same
step of every record in a batch (knockout step j, a tournament round, a merge step). Tests drive them with a
scripted compare.

- `knockout`: the paper's linear search for best-of-n: the current best meets the next candidate; n−1 comparisons.
- `tournament`: single elimination in ⌈log2 n⌉ rounds (n−1 comparisons, fewer sequential steps).
- `full`: a complete ranking by a bottom-up merge sort (all merges of a level advance together), verdicts cached.
- `round_robin`: every pair once (n(n−1)/2 comparisons), ranked by wins; the baseline of benchmarks/bench_rank.py.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import judge, records, shards
from ..errors import GramrError
from ..progress import progress_bar as bar_of

if TYPE_CHECKING:
    from ..config import Config

METHODS = ("knockout", "tournament", "full", "round_robin")


@dataclass
class RankConfig:
    votes: int = 1                  # voting@k: samples per order; k > 1 samples at generate.temperature
    orders: str = "ab"              # ab | both (judge A/B and B/A, combine; the GRAM-R² RLHF recipe uses both)
    method: str = "knockout"        # rank list: knockout (paper) | tournament | full | round_robin
    tie_break: bool = True          # a voting tie goes to the side with the higher mean P(A better)
    batch_size: int = 32            # records per engine round (and per flush / progress step)
    keep_samples: bool = False      # keep every raw judge output in meta.judgment.samples


# ---------------------------------------------------------------- selection algorithms (pure)

Comparison = tuple[int, int]                      # (i, j): asks P(candidate i is better than candidate j)
Proc = Generator[list[Comparison], list[float], tuple[int, list[int]]]


def knockout(n: int) -> Proc:
    """The paper's best-of-n linear search: keep the current best, compare it with the next candidate.
    n−1 comparisons in n−1 steps. A tie (P = 0.5) keeps the incumbent. Returns (winner, ranking), ranking =
    winner then candidates in reverse order of elimination (a partial order: who survived longest)."""
    best, eliminated = 0, []
    for j in range(1, n):
        (p,) = yield [(best, j)]
        loser, best = (j, best) if p >= 0.5 else (best, j)
        eliminated.append(loser)
    return best, [best, *reversed(eliminated)]


def tournament(n: int) -> Proc:
    """Single elimination: pair up survivors each round (an odd one out gets a bye); ⌈log2 n⌉ rounds, n−1
    comparisons. Ranking = winner, then the losers of each round, latest round first."""
    alive, rounds = list(range(n)), []
    while len(alive) > 1:
        pairs = [(alive[k], alive[k + 1]) for k in range(0, len(alive) - 1, 2)]
        ps = yield pairs
        winners, losers = [], []
        for (a, b), p in zip(pairs, ps):
            winners.append(a if p >= 0.5 else b)
            losers.append(b if p >= 0.5 else a)
        if len(alive) % 2:
            winners.append(alive[-1])
        rounds.append(losers)
        alive = winners
    return alive[0], [alive[0], *(x for losers in reversed(rounds) for x in losers)]


def full(n: int) -> Proc:
    """A complete ranking by bottom-up merge sort: the merges of one level advance together, one comparison
    each per step (≤ n⌈log2 n⌉ comparisons). Verdicts are cached per unordered pair, so no pair is judged twice
    even when a non-transitive judge would make a sort revisit it. Equal preference (0.5) keeps the earlier run
    first (stable)."""
    cache: dict[tuple[int, int], float] = {}
    runs = [[i] for i in range(n)]
    while len(runs) > 1:
        merges = [[runs[k], runs[k + 1], 0, 0, []] for k in range(0, len(runs) - 1, 2)]
        tail = [runs[-1]] if len(runs) % 2 else []
        while True:
            active = [m for m in merges if m[2] < len(m[0]) and m[3] < len(m[1])]
            if not active:
                break
            need = [(m[0][m[2]], m[1][m[3]]) for m in active]
            ask = [c for c in dict.fromkeys(need) if c not in cache and (c[1], c[0]) not in cache]
            if ask:
                for c, p in zip(ask, (yield ask)):
                    cache[c] = p
            for m, (a, b) in zip(active, need):
                p = cache[(a, b)] if (a, b) in cache else 1.0 - cache[(b, a)]
                if p >= 0.5:
                    m[4].append(a)
                    m[2] += 1
                else:
                    m[4].append(b)
                    m[3] += 1
        runs = [m[4] + m[0][m[2]:] + m[1][m[3]:] for m in merges] + tail
    return runs[0][0], runs[0]


def round_robin(n: int) -> Proc:
    """Every unordered pair once, all in one step; ranked by wins, then summed preference, then index."""
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    wins, pref = [0] * n, [0.0] * n
    if pairs:
        for (i, j), p in zip(pairs, (yield pairs)):
            wins[i if p >= 0.5 else j] += 1
            pref[i] += p
            pref[j] += 1.0 - p
    ranking = sorted(range(n), key=lambda k: (-wins[k], -pref[k], k))
    return ranking[0], ranking


ALGORITHMS: dict[str, Callable[[int], Proc]] = {"knockout": knockout, "tournament": tournament, "full": full,
                                                 "round_robin": round_robin}


@dataclass
class Selection:
    winner: int
    ranking: list[int]
    comparisons: list[tuple[int, int, float]] = field(default_factory=list)   # (i, j, P(i better))


def drive(sizes: list[int], method: str, compare: Callable[[list[tuple[int, int, int]]], list[float]]
          ) -> tuple[list[Selection], int]:
    """Run `method` for records with `sizes` candidates, advancing them together: each step calls
    `compare([(record, i, j), …])` once with every active record's comparisons and expects one P(i better) each.
    Returns the selections and the number of compare calls (engine rounds). Raises GramrError for an unknown
    method or a compare that returns the wrong number of values."""
    if method not in ALGORITHMS:
        raise GramrError(f"unknown rank method {method!r}; choose from {', '.join(METHODS)}")
    procs = [ALGORITHMS[method](n) for n in sizes]
    results: list[Selection | None] = [None] * len(procs)
    logs: list[list[tuple[int, int, float]]] = [[] for _ in procs]
    pending: dict[int, list[Comparison]] = {}

    def advance(r: int, sent: list[float] | None) -> None:
        try:
            pending[r] = procs[r].send(sent)
        except StopIteration as stop:
            winner, ranking = stop.value
            results[r] = Selection(winner, ranking, logs[r])

    for r in range(len(procs)):
        advance(r, None)
    rounds = 0
    while pending:
        flat = [(r, i, j) for r, reqs in pending.items() for i, j in reqs]
        ps = list(compare(flat))
        rounds += 1
        if len(ps) != len(flat):
            raise GramrError(f"compare returned {len(ps)} values for {len(flat)} comparisons")
        current, k = dict(pending), 0
        pending.clear()
        for r, reqs in current.items():
            got = ps[k:k + len(reqs)]
            k += len(reqs)
            logs[r].extend((i, j, p) for (i, j), p in zip(reqs, got))
            advance(r, got)
    return results, rounds  # type: ignore[return-value]


def select(method: str, n: int, compare: Callable[[list[Comparison]], list[float]]) -> Selection:
    """One record's selection with `compare([(i, j), …]) -> [P(i better), …]` (a scripted judge in tests)."""
    (sel,), _ = drive([n], method, lambda flat: compare([(i, j) for _, i, j in flat]))
    return sel


def expected_comparisons(method: str, n: int) -> int | None:
    """Comparisons a method makes for n candidates (None when it depends on the verdicts: `full`)."""
    return {"knockout": n - 1, "tournament": n - 1, "round_robin": n * (n - 1) // 2}.get(method)


def rounds_needed(method: str, n: int) -> int | None:
    return {"knockout": n - 1, "tournament": math.ceil(math.log2(n)) if n > 1 else 0,
            "round_robin": 1 if n > 1 else 0}.get(method)


# ---------------------------------------------------------------- judging with an engine

def judge_kwargs(cfg: Config, votes: int, orders: str, tie_break: bool = True) -> dict:
    """Keyword arguments for `judge.judge_pairs`: greedy for one vote, generate.temperature for voting@k."""
    if votes < 1:
        raise GramrError(f"votes must be >= 1, got {votes}")
    if orders not in ("ab", "both"):
        raise GramrError(f"orders must be 'ab' or 'both', got {orders!r}")
    g = cfg.generate
    return {"version": cfg.prompt, "n": votes, "orders": orders, "temperature": g.temperature if votes > 1 else 0.0,
            "top_p": g.top_p, "max_new_tokens": g.max_new_tokens, "seed": cfg.seed, "tie_break": tie_break,
            "verdict_only": g.verdict_only}


def preference(j: judge.Judgment) -> float:
    """The P(A better) a selection algorithm sees: the judgment's `p_a`, clamped to the voted side when majority
    voting overrules the answer-token probability; 0.5 (no preference) when nothing parsed and no probability."""
    if j.label is None:
        return 0.5 if j.p_a is None else j.p_a
    if j.p_a is not None and (j.p_a > 0.5) == (j.label == "A") and j.p_a != 0.5:
        return j.p_a
    return 1.0 if j.label == "A" else 0.0


def load(cfg: Config, engine=None):
    """(engine, owned): the given engine, or one loaded from cfg.model (closed by the caller when owned)."""
    if engine is not None:
        return engine, False
    from .. import engines
    return engines.load_engine(cfg.model, cfg.generate, cfg.seed), True


def progress_bar(enabled: bool, total: int, desc: str):
    """(bar, task): the stages' progress bar (`progress.progress_bar`) with one task already added."""
    p = bar_of(enabled)
    return p, p.add_task(desc, total=total)


def batches(items: list, size: int) -> Iterator[list]:
    for k in range(0, len(items), max(1, size)):
        yield items[k:k + size]


def pair_metrics(js: list[judge.Judgment], gold: list[str | None]) -> dict[str, Any]:
    """Parse rate, label counts, ties, order disagreement and (where gold labels exist) accuracy."""
    samples = sum(sum(j.votes.values()) for j in js)
    decided = [j.order_consistent for j in js if j.order_consistent is not None]
    m: dict[str, Any] = {
        "pairs": len(js),
        "parse_rate": (sum(j.parse_ok for j in js) / samples) if samples else None,
        "label_A": sum(j.label == "A" for j in js), "label_B": sum(j.label == "B" for j in js),
        "no_label": sum(j.label is None for j in js), "tie_broken": sum(j.tie_broken for j in js),
    }
    if decided:
        m["order_disagreement"] = sum(not c for c in decided) / len(decided)
        m["order_pairs_compared"] = len(decided)
    scored = [(j.label, g) for j, g in zip(js, gold) if g is not None]
    if scored:
        m["accuracy"] = sum(lab == g for lab, g in scored) / len(scored)
        m["gold_pairs"] = len(scored)
    return m


def _provenance(cfg: Config) -> dict:
    return {"model": cfg.model, "seed": cfg.seed, "prompt_version": cfg.prompt}


def _hashed(cfg: Config) -> dict:
    from ..config import sections
    return sections(cfg, "model", "prompt", "seed", "generate", "rank")


# ---------------------------------------------------------------- rank pairs

def run_pairs(cfg: Config, inputs: list[Path], output: Path, *, engine=None, overwrite: bool = False,
              shard_index: int | None = None, num_shards: int | None = None, progress: bool = True
              ) -> shards.Summary:
    """Judge every pair (rank.votes samples per order, rank.orders) and write it with `meta.judgment`."""
    rc = cfg.rank
    kw = judge_kwargs(cfg, rc.votes, rc.orders, rc.tie_break)
    with shards.open_output(output, stage="rank", config=_hashed(cfg), inputs=inputs, overwrite=overwrite,
                            shard_index=shard_index, num_shards=num_shards, provenance=_provenance(cfg),
                            batch_size=rc.batch_size) as out:
        skipped = out.skipped
        todo = list(shards.read(inputs, skip=out.done_ids, shard_index=shard_index, num_shards=num_shards,
                                skipped=skipped))
        eng, owned = load(cfg, engine) if todo else (None, False)
        all_j, gold = [], []
        bar, task = progress_bar(progress, len(todo), "rank pairs")
        try:
            with bar:
                for batch in batches(todo, rc.batch_size):
                    js = judge.judge_pairs(eng, batch, **kw)
                    for rec, j in zip(batch, js):
                        rec["meta"]["judgment"] = j.to_meta(keep_samples=rc.keep_samples)
                        out.write(rec)
                    out.flush()
                    all_j += js
                    gold += [_gold(r) for r in batch]
                    bar.advance(task, len(batch))
        finally:
            if owned:
                eng.close()
        if out.resumed:                     # report on the whole output, not only this run's share
            out.flush()
            done = list(shards.read([out.part_path()]))
            all_j = [judge.Judgment(**r["meta"]["judgment"]) for r in done]
            gold = [_gold(r) for r in done]
        out.metrics.update(pair_metrics(all_j, gold))
        out.metrics.update({"votes": rc.votes, "orders": rc.orders})
    return out.summary()


def _gold(rec: dict) -> str | None:
    """The gold label: the record's `label`, else `meta.gold_label`."""
    g = rec.get("label") or (rec.get("meta") or {}).get("gold_label")
    return g if g in records.LABELS else None


# ---------------------------------------------------------------- rank list

def list_id(prompt: str, candidates: list[str]) -> str:
    """sha256 of prompt␟candidate_0␟…, first 16 hex (stable, like pair ids)."""
    return hashlib.sha256(records.SEP.join([prompt, *candidates]).encode("utf-8")).hexdigest()[:16]


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


def read_lists(inputs: list[Path], skip: set[str], skipped, shard_index=None, num_shards=None) -> list[dict]:
    out, seen = [], set()
    for src in shards.source_files(inputs):
        for where, obj in shards.read_raw(src):
            rec = normalize_list(obj, where)
            if rec["id"] in seen:
                skipped["duplicate_id"] += 1
                continue
            seen.add(rec["id"])
            if num_shards and num_shards > 1 and shards.shard_of(rec["id"], num_shards) != (shard_index or 0):
                continue
            if rec["id"] in skip:
                skipped["already_done"] += 1
                continue
            out.append(rec)
    return out


def engine_compare(engine, recs: list[dict], kw: dict, log: list | None = None):
    """A `drive` compare that judges (record, i, j) as the pair (prompt, candidate i, candidate j)."""
    def compare(flat: list[tuple[int, int, int]]) -> list[float]:
        pairs = [{"prompt": recs[r]["prompt"], "response_a": recs[r]["candidates"][i],
                  "response_b": recs[r]["candidates"][j]} for r, i, j in flat]
        js = judge.judge_pairs(engine, pairs, **kw)
        if log is not None:
            log.extend(js)
        return [preference(j) for j in js]
    return compare


def run_list(cfg: Config, inputs: list[Path], output: Path, *, engine=None, overwrite: bool = False,
             shard_index: int | None = None, num_shards: int | None = None, progress: bool = True
             ) -> shards.Summary:
    """Best-of-n per record with rank.method; adds meta.rank {method, winner, ranking, comparisons, judge_calls}."""
    rc = cfg.rank
    if rc.method not in ALGORITHMS:
        raise GramrError(f"rank.method: unknown method {rc.method!r}; choose from {', '.join(METHODS)}")
    kw = judge_kwargs(cfg, rc.votes, rc.orders, rc.tie_break)
    per_cmp = len(judge.ORDERS[rc.orders])
    with shards.open_output(output, stage="rank", config=_hashed(cfg), inputs=inputs, overwrite=overwrite,
                            shard_index=shard_index, num_shards=num_shards, provenance=_provenance(cfg),
                            batch_size=rc.batch_size) as out:
        todo = read_lists(inputs, out.done_ids, out.skipped, shard_index, num_shards)
        eng, owned = load(cfg, engine) if todo else (None, False)
        totals = {"comparisons": 0, "judge_calls": 0, "engine_rounds": 0, "candidates": 0}
        js: list[judge.Judgment] = []
        bar, task = progress_bar(progress, len(todo), f"rank list ({rc.method})")
        try:
            with bar:
                for batch in batches(todo, rc.batch_size):
                    sels, rounds = drive([len(r["candidates"]) for r in batch], rc.method,
                                         engine_compare(eng, batch, kw, js))
                    for rec, sel in zip(batch, sels):
                        ncmp = len(sel.comparisons)
                        rec["meta"]["rank"] = {
                            "method": rc.method, "winner": sel.winner, "ranking": sel.ranking,
                            "comparisons": [[i, j, round(p, 6)] for i, j, p in sel.comparisons],
                            "judge_calls": ncmp * per_cmp, "samples": ncmp * per_cmp * rc.votes}
                        out.write(rec)
                        totals["comparisons"] += ncmp
                        totals["judge_calls"] += ncmp * per_cmp
                        totals["candidates"] += len(rec["candidates"])
                    totals["engine_rounds"] += rounds
                    out.flush()
                    bar.advance(task, len(batch))
        finally:
            if owned:
                eng.close()
        out.metrics.update(totals)
        out.metrics.update({"method": rc.method, "votes": rc.votes, "orders": rc.orders})
        if js:
            pm = pair_metrics(js, [None] * len(js))
            out.metrics["parse_rate"] = pm["parse_rate"]
            if "order_disagreement" in pm:
                out.metrics["order_disagreement"] = pm["order_disagreement"]
    return out.summary()
