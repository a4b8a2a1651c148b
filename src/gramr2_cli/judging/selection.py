"""The pure selection algorithms of listwise best-of-n (used by `rank list`, `evaluate` on lists, group rewards).

Each algorithm is a generator over candidate indices: it yields a list of comparisons `(i, j)` ("is i better than
j?") and receives one P(first better) per comparison. `drive()` advances many records together, so one engine
call carries the same step of every record in a batch (knockout step j, a tournament round, a merge step). Tests
drive them with a scripted compare; `candidate_compare` plugs in a judge.

- `knockout`: the paper's linear search for best-of-n: the current best meets the next candidate; n−1 comparisons.
- `full`: the paper's complete ranking: repeated selection, a knockout over the candidates not yet ranked picks the
  best of the rest for the next place; verdicts cached per pair (ours), n−1 to n(n−1)/2 comparisons.
- `tournament`: single elimination in ⌈log2 n⌉ rounds (n−1 comparisons, fewer sequential steps); ours.
- `mergesort`: a complete ranking by a bottom-up merge sort (all merges of a level advance together), verdicts
  cached; ≤ n⌈log2 n⌉ comparisons; ours.
- `round_robin`: every pair once (n(n−1)/2 comparisons), ranked by wins; the baseline of benchmarks/bench_rank.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

from ..core import config
from ..core.errors import GramrError
from . import judge

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
    """The paper's complete ranking by repeated selection: a knockout (`knockout`) over the candidates not yet
    ranked selects the best of the rest, which takes the next place; repeat until none is left. One comparison
    per step. Verdicts are cached per unordered pair (ours): a pair met again in a later knockout reuses its first
    verdict instead of being judged again, so a ranking costs from n−1 comparisons (candidates already worst
    to best: every later knockout is answered from the cache) to n(n−1)/2 (best to worst: every pair once),
    where the uncached procedure always makes n(n−1)/2. A tie (P = 0.5) keeps the incumbent, as in `knockout`."""
    cache: dict[tuple[int, int], float] = {}
    rest, ranking = list(range(n)), []
    while rest:
        best = rest[0]
        for j in rest[1:]:
            if (best, j) in cache:
                p = cache[(best, j)]
            elif (j, best) in cache:
                p = 1.0 - cache[(j, best)]
            else:
                (p,) = yield [(best, j)]
                cache[(best, j)] = p
            if p < 0.5:
                best = j
        ranking.append(best)
        rest.remove(best)
    return ranking[0], ranking


def mergesort(n: int) -> Proc:
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


ALGORITHMS: dict[str, Callable[[int], Proc]] = {"knockout": knockout, "full": full, "tournament": tournament,
                                                 "mergesort": mergesort, "round_robin": round_robin}


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
    method (ConfigError, `ALGORITHMS`) or a compare that returns the wrong number of values."""
    config.require(config.choice("method", method, ALGORITHMS))
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
    """Comparisons a method makes for n candidates (None when it depends on the verdicts: `full`, `mergesort`)."""
    return {"knockout": n - 1, "tournament": n - 1, "round_robin": n * (n - 1) // 2}.get(method)


def rounds_needed(method: str, n: int) -> int | None:
    return {"knockout": n - 1, "tournament": math.ceil(math.log2(n)) if n > 1 else 0,
            "round_robin": 1 if n > 1 else 0}.get(method)


def candidate_compare(engine, recs: list[dict], how: judge.Settings, log: list | None = None):
    """A `drive` compare that judges (record, i, j) as the pair (prompt, candidate i, candidate j) with `how`;
    each judgment goes to `log` when given."""
    def compare(flat: list[tuple[int, int, int]]) -> list[float]:
        pairs = [{"prompt": recs[r]["prompt"], "response_a": recs[r]["candidates"][i],
                  "response_b": recs[r]["candidates"][j]} for r, i, j in flat]
        js = how.judge(engine, pairs)
        if log is not None:
            log.extend(js)
        return [judge.preference(j) for j in js]
    return compare
