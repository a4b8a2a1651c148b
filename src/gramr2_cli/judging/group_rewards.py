"""Group rewards for GRPO-style trainers: one scalar per rollout from pairwise judgments (ours; issue 14).

A pairwise judge has no absolute score, and GRPO needs one number per rollout of a prompt's group of G. The
functions here are pure: they ask a `compare` callback for judgments and turn them into rewards, so tests drive
them with scripted judgments and `judge_compare` plugs in a real engine.

A *call* `(group, a, b)` asks for one judgment of one presentation order: rollout `a` shown as Response A,
rollout `b` as B (`REFERENCE` stands for the group's reference response). The callback returns P(shown A is
better) in [0, 1], or None when the judgment failed (unparseable, truncated, too long for the context).

Pairings (`GroupConfig.pairing`), each judged in `orders` (default both: every pair shown A/B and B/A):
- `reference`: each rollout against a reference response (e.g. the policy's greedy output): the scheme
  `rlhf.py` used before group rewards, GRAM (v1)'s RLHF reward, not a pairing GRAM-R² specifies. G calls per order.
- `round_robin`: all G(G−1)/2 pairs, each in every order (G(G−1) calls with both orders).
- `circular`: each rollout against its neighbour i+1 mod G: G pairs (one for G = 2), G calls per order.
- `knockout`: the paper's best-of-n linear search (`selection.knockout`, n−1 comparisons, each in every
  order); the ranking (winner, then reverse elimination order) maps linearly to [0, 1]: 1 − position/(m−1).

Scores (`GroupConfig.score`) for the non-knockout pairings, from each rollout's own side of its comparisons:
- `p_a`: mean P(rollout better) (with `reference` and both orders: today's reward, ½[P(A|y,ref) + P(B|ref,y)]);
- `win_rate`: mean of 1 (P > ½), ½ (P = ½), 0 (P < ½);
- `bt`: a Bradley–Terry fit on the soft outcomes (`fit_bradley_terry`), reward = mean over the group's other
  scored rollouts j of σ(s_i − s_j) (round_robin and circular only).

Masking: a failed call is dropped, never scored as a loss or a neutral ½. A rollout whose every call failed gets
None (TRL drops a None reward from the advantage; what other frameworks get is their hook's business). A knockout
comparison whose calls all failed keeps the incumbent (the algorithm needs a verdict) and counts for neither side.
With `orders: both` and `whole_pairs` (the default), a comparison whose one order failed is masked as a whole:
the other order alone would carry the judge's position bias into the reward (issue 17 item 11).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..core import config
from ..core.errors import GramrError
from .judge import preference
from .selection import drive

PAIRINGS = ("reference", "round_robin", "circular", "knockout")
SCORES = ("p_a", "win_rate", "bt")
ORIENTATIONS = {"ab": ((0, 1),), "ba": ((1, 0),), "both": ((0, 1), (1, 0))}   # which side is shown as A
REFERENCE = -1                                   # the group's reference response in a call

Call = tuple[int, int, int]                      # (group, shown A, shown B)
GroupCompare = Callable[[list[Call]], list["float | None"]]


@dataclass
class GroupConfig:
    """How a group of rollouts is judged and scored (every default here is ours; the paper gives none)."""
    pairing: str = "round_robin"   # reference | round_robin | circular | knockout
    orders: str = "both"           # ab | ba | both (both presentation orders of every comparison)
    score: str = "p_a"             # p_a | win_rate | bt (knockout: the rank, so leave p_a or win_rate)
    votes: int = 1                 # judge samples per call (voting@k inside one call)
    bt_prior: float = 0.1          # Gaussian prior precision on BT strengths (0 = plain maximum likelihood)
    whole_pairs: bool = True       # orders both: a comparison counts only when both of its orders were judged

    def __post_init__(self) -> None:
        if self.pairing == "round-robin":        # the old spelling (recipe.RENAMED_VALUES for serve.pairing)
            warnings.warn("pairing 'round-robin' is now 'round_robin'", DeprecationWarning, stacklevel=3)
            self.pairing = "round_robin"

    def check(self) -> list[str]:
        """Problems with these settings, one string per problem naming the key (`group.`); [] when fine."""
        return [f"group.{p}" for p in [*scoring_problems(self.pairing, self.score),
                                       *config.choice("orders", self.orders, ORIENTATIONS),
                                       *config.at_least("votes", self.votes, 1),
                                       *config.at_least("bt_prior", self.bt_prior, 0)]]


def scoring_problems(pairing: str, score: str) -> list[str]:
    """The one check of a pairing and a score (keys relative to the section: `pairing`, `score`): what
    `GroupConfig.check` and a recipe section that chooses them (`serve.pairing`, `serve.score`) report."""
    found = [*config.choice("pairing", pairing, PAIRINGS), *config.choice("score", score, SCORES)]
    if not found and score == "bt" and pairing in ("reference", "knockout"):
        found.append(f"score: bt needs comparisons between rollouts; pairing {pairing!r} does not make them "
                     "(use round_robin or circular)")
    return found


@dataclass
class GroupResult:
    """One group's rewards and what they cost."""
    rewards: list[float | None]                  # one per rollout; None = every call involving it failed
    judge_calls: int                             # calls made (each is `votes` judge samples)
    failed_calls: int                            # calls that returned None (masked)
    seconds: float                               # wall time of the scoring, shared by call count across groups
    calls: list[tuple[int, int, float | None]] = field(default_factory=list)   # (shown A, shown B, P(A))


# ---------------------------------------------------------------- pairings

def pairs_of(pairing: str, g: int) -> list[tuple[int, int]]:
    """The unordered comparisons of a non-adaptive pairing for G rollouts, first element shown as A in 'ab'."""
    if pairing == "reference":
        return [(i, REFERENCE) for i in range(g)]
    if pairing == "round_robin":
        return [(i, j) for i in range(g) for j in range(i + 1, g)]
    if pairing == "circular":
        if g < 3:
            return [(0, 1)] if g == 2 else []       # G = 2: the two "neighbour" pairs are the same pair
        return [(i, (i + 1) % g) for i in range(g)]
    raise GramrError(f"{pairing!r} is not a non-adaptive pairing")


def oriented(pair: tuple[int, int], orders: str) -> list[tuple[int, int]]:
    """`pair` as shown in each order: ab → (x, y), ba → (y, x)."""
    return [(pair[a], pair[b]) for a, b in ORIENTATIONS[orders]]


# ---------------------------------------------------------------- scores (pure)

def _outcomes(g: int, calls: list[tuple[int, int, float | None]]) -> list[list[float]]:
    """Each rollout's P(it is better) from every call it took part in that did not fail."""
    own: list[list[float]] = [[] for _ in range(g)]
    for a, b, p in calls:
        if p is None:
            continue
        if a != REFERENCE:
            own[a].append(p)
        if b != REFERENCE:
            own[b].append(1.0 - p)
    return own


def _win(p: float) -> float:
    return 1.0 if p > 0.5 else 0.0 if p < 0.5 else 0.5


def fit_bradley_terry(g: int, calls: list[tuple[int, int, float]], prior: float = 0.1,
                      iters: int = 50) -> np.ndarray:
    """Bradley–Terry strengths s (centred) maximising Σ_c [p_c log σ(s_a − s_b) + (1 − p_c) log σ(s_b − s_a)]
    − prior/2 ‖s‖² over soft outcomes p_c = P(a better), by Newton's method (the objective is concave; with
    prior > 0 strictly, so the optimum is unique even when a rollout wins everything outright). With prior = 0
    and outcomes that a BT model generates exactly, the fit recovers s_a − s_b = logit(p). Ours (the paper
    gives no group reward)."""
    s = np.zeros(g)
    if not calls:
        return s
    a = np.array([c[0] for c in calls])
    b = np.array([c[1] for c in calls])
    p = np.array([c[2] for c in calls], dtype=float)
    for _ in range(iters):
        q = 1.0 / (1.0 + np.exp(-(s[a] - s[b])))
        grad = -prior * s
        np.add.at(grad, a, p - q)
        np.add.at(grad, b, q - p)
        w = q * (1.0 - q)
        hess = -prior * np.eye(g)
        np.add.at(hess, (a, a), -w)
        np.add.at(hess, (b, b), -w)
        np.add.at(hess, (a, b), w)
        np.add.at(hess, (b, a), w)
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]   # lstsq: with prior 0, H is singular along 1
        s = s - step
        s -= s.mean()
        if np.max(np.abs(step)) < 1e-12:
            break
    return s


def score_calls(g: int, calls: list[tuple[int, int, float | None]], score: str,
                prior: float = 0.1) -> list[float | None]:
    """Per-rollout rewards of one group from its calls (shown A, shown B, P(A) or None), by `score`."""
    own = _outcomes(g, calls)
    if score == "p_a":
        return [sum(o) / len(o) if o else None for o in own]
    if score == "win_rate":
        return [sum(map(_win, o)) / len(o) if o else None for o in own]
    scored = [i for i in range(g) if own[i]]
    index = {i: k for k, i in enumerate(scored)}
    valid = [(index[a], index[b], p) for a, b, p in calls if p is not None]
    s = fit_bradley_terry(len(scored), valid, prior)
    out: list[float | None] = [None] * g
    for i in scored:
        others = [j for j in scored if j != i]
        out[i] = sum(1.0 / (1.0 + math.exp(-(s[index[i]] - s[index[j]]))) for j in others) / len(others)
    return out


def rank_rewards(ranking: list[int], scored: set[int], g: int) -> list[float | None]:
    """Knockout: position k among the scored rollouts of `ranking` → 1 − k/(m−1); unscored → None."""
    kept = [i for i in ranking if i in scored]
    out: list[float | None] = [None] * g
    for k, i in enumerate(kept):
        out[i] = 1.0 - k / (len(kept) - 1) if len(kept) > 1 else 1.0
    return out


# ---------------------------------------------------------------- driving a compare callback

def mask_pairs(got: list[float | None], per: int) -> list[float | None]:
    """Values of consecutive chunks of `per` calls (one comparison in each order): a chunk with a failed call
    becomes all None, so no comparison is scored from one presentation order only."""
    out = list(got)
    for k in range(0, len(out), per):
        if any(p is None for p in out[k:k + per]):
            out[k:k + per] = [None] * len(out[k:k + per])
    return out


def _knockout(sizes: list[int], compare: GroupCompare, orders: str, whole: bool
              ) -> tuple[list[list[int]], list[list[tuple[int, int, float | None]]]]:
    """Rankings and calls of `stages/rank.knockout` for every group, all groups advancing together."""
    logs: list[list[tuple[int, int, float | None]]] = [[] for _ in sizes]

    def step(flat: list[tuple[int, int, int]]) -> list[float]:
        calls = [(r, x, y) for r, i, j in flat for x, y in oriented((i, j), orders)]
        got = list(compare(calls))
        if len(got) != len(calls):
            raise GramrError(f"compare returned {len(got)} values for {len(calls)} calls")
        per, out = len(ORIENTATIONS[orders]), []
        got = mask_pairs(got, per) if whole else got
        for k, (r, i, _) in enumerate(flat):
            chunk = list(zip(calls[k * per:(k + 1) * per], got[k * per:(k + 1) * per]))
            logs[r].extend((x, y, p) for (_, x, y), p in chunk)
            mine = [p if x == i else 1.0 - p for (_, x, _), p in chunk if p is not None]
            out.append(sum(mine) / len(mine) if mine else 0.5)     # all failed: the incumbent stays
        return out

    sels, _ = drive(sizes, "knockout", step)
    return [s.ranking for s in sels], logs


def score_groups(sizes: list[int], compare: GroupCompare, cfg: GroupConfig) -> list[GroupResult]:
    """Rewards for groups of `sizes` rollouts (several groups share each compare call). `compare` gets calls
    (group, shown A, shown B) and returns P(shown A better) or None per call. Raises GramrError for settings
    `cfg.check()` rejects or a compare that returns the wrong number of values."""
    problems = cfg.check()
    if problems:
        raise GramrError("; ".join(problems))
    t0 = time.perf_counter()
    if cfg.pairing == "knockout":
        rankings, logs = _knockout(sizes, compare, cfg.orders, cfg.whole_pairs)
        results = [rank_rewards(rk, {i for i, o in enumerate(_outcomes(n, lg)) if o}, n)
                   for n, rk, lg in zip(sizes, rankings, logs)]
    else:
        calls = [(r, x, y) for r, n in enumerate(sizes) for pr in pairs_of(cfg.pairing, n)
                 for x, y in oriented(pr, cfg.orders)]
        got = list(compare(calls)) if calls else []
        if len(got) != len(calls):
            raise GramrError(f"compare returned {len(got)} values for {len(calls)} calls")
        if cfg.whole_pairs:
            got = mask_pairs(got, len(ORIENTATIONS[cfg.orders]))
        logs = [[] for _ in sizes]
        for (r, x, y), p in zip(calls, got):
            logs[r].append((x, y, p))
        results = [score_calls(n, lg, cfg.score, cfg.bt_prior) for n, lg in zip(sizes, logs)]
    seconds = time.perf_counter() - t0
    total = sum(len(lg) for lg in logs) or 1
    return [GroupResult(rewards, len(lg), sum(p is None for _, _, p in lg), seconds * len(lg) / total, lg)
            for rewards, lg in zip(results, logs)]


def judge_compare(judge_fn: Callable[[list[dict]], list], prompts: list[str], rollouts: list[list[str]],
                  references: list[str] | None = None) -> GroupCompare:
    """A `score_groups` compare backed by a judge: `judge_fn(pairs)` judges {prompt, response_a, response_b}
    pairs in the shown order only (orders "ab") and returns `judge.Judgment`s. A judgment with no parsed
    verdict (unparseable, truncated, too long for the context) is a failed call (None); otherwise the call's
    value is the judgment's P(A better) as `judge.preference` reads it."""
    def text(r: int, i: int) -> str:
        if i != REFERENCE:
            return rollouts[r][i]
        if references is None:
            raise GramrError("pairing 'reference' needs one reference response per group")
        return references[r]

    def compare(calls: list[Call]) -> list[float | None]:
        pairs = [{"prompt": prompts[r], "response_a": text(r, a), "response_b": text(r, b)} for r, a, b in calls]
        return [None if j.parse_ok == 0 else preference(j) for j in judge_fn(pairs)] if pairs else []
    return compare


# ---------------------------------------------------------------- a trainer's flat batch → groups

def group_indices(keys: list, group_size: int | None = None) -> list[list[int]]:
    """A flat batch's items grouped by their prompt key: with `group_size` G (TRL's num_generations), the
    consecutive chunks of G (TRL repeats each prompt G times in a row; raises GramrError when a chunk mixes
    prompts or the batch is not a multiple of G); without it, all items with an equal key, in first-seen order
    (OpenRLHF and verl batches, whose rollouts of one prompt need not be adjacent)."""
    if group_size:
        if len(keys) % group_size:
            raise GramrError(f"a batch of {len(keys)} completions is not a multiple of num_generations={group_size}")
        chunks = [list(range(k, k + group_size)) for k in range(0, len(keys), group_size)]
        for c in chunks:
            if any(keys[i] != keys[c[0]] for i in c):
                raise GramrError(f"completions {c[0]}..{c[-1]} do not share one prompt; is num_generations "
                                 f"{group_size} the trainer's?")
        return chunks
    groups: dict = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    return list(groups.values())


def batch_rewards(judge_fn: Callable[[list[dict]], list], prompts: list[str], responses: list[str],
                  references: list[str] | None, cfg: GroupConfig, group_size: int | None = None
                  ) -> tuple[list[float | None], list[GroupResult]]:
    """One reward (or None, masked) per item of a flat batch: items grouped by prompt (`group_indices`; with
    pairing `reference`, by prompt and reference), each group scored by `score_groups` through `judge_compare`
    (`judge_fn` judges pairs in the shown order only). Returns the rewards in batch order and each group's
    result (judge calls, failures, seconds)."""
    if cfg.pairing == "reference" and references is None:
        raise GramrError("pairing 'reference' needs a reference response per item")
    ref = cfg.pairing == "reference"
    keys = [(p, references[i] if ref else "") for i, p in enumerate(prompts)]
    groups = group_indices(keys, None if ref else group_size)
    compare = judge_compare(judge_fn, [prompts[g[0]] for g in groups], [[responses[i] for i in g] for g in groups],
                            [references[g[0]] for g in groups] if ref else None)
    results = score_groups([len(g) for g in groups], compare, cfg)
    out: list[float | None] = [None] * len(prompts)
    for g, res in zip(groups, results):
        for i, r in zip(g, res.rewards):
            out[i] = r
    return out, results


def fill_masked(rewards: list[float | None], groups: list[list[int]]) -> list[float]:
    """For trainers that take no missing reward (OpenRLHF, verl): a masked item gets the mean of its group's
    scored items, so its group-relative advantage is 0 and the group's baseline is unchanged; a group with no
    scored item gets 0.5 for every member (all equal: zero group-relative advantage). Ours."""
    out = [0.5 if r is None else float(r) for r in rewards]
    for g in groups:
        scored = [rewards[i] for i in g if rewards[i] is not None]
        if scored:
            for i in g:
                if rewards[i] is None:
                    out[i] = sum(scored) / len(scored)
    return out


def mask_report(texts: list[str], rewards: list[float | None]) -> dict:
    """Masked-reward accounting (ours; issue 26): {masked, scored, masked_chars, scored_chars} — how many of
    `rewards` are None and the mean length in characters of the masked and of the scored `texts` (None for an
    empty set). Masking drops failed judgments, and the slowest or truncated ones are often the longest rollouts:
    a gap between the two means says the masking biases training on length."""
    masked = [len(t) for t, r in zip(texts, rewards) if r is None]
    scored = [len(t) for t, r in zip(texts, rewards) if r is not None]
    return {"masked": len(masked), "scored": len(scored),
            "masked_chars": sum(masked) / len(masked) if masked else None,
            "scored_chars": sum(scored) / len(scored) if scored else None}
