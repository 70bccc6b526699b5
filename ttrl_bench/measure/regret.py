"""Budget curves and cumulative regret (MRT, Qu et al. 2025): pure arithmetic, no I/O.

Per question q and budget b (tokens):
- J_q(b): share of forced answers after b tokens that are correct (mean over the
  question's sampled completions);
- the parallel comparator at equal total tokens: k(b) = floor(b / L_q)
  independent samples, L_q the mean length of the question's samples; its
  accuracy is maj@k (the expected majority-vote accuracy of k of the samples) or
  pass@k. Where no whole sample fits (k = 0) the comparator is taken to be J_q(b)
  itself (zero regret there): parallel sampling has nothing to offer yet;
- cumulative regret up to B: R_q(B) = (1/B) * integral_0^B [C_q(b) - J_q(b)] db,
  the integral by the trapezoid rule on the budget grid (which always starts at
  b = 0); against the oracle C = 1 it is 1 - (area under J up to B) / B.
Curves and regrets are averaged over questions with standard errors over questions.
Token efficiency: the smallest grid budget whose mean J reaches 90% of the mean J
at the largest budget.
"""
from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence

from ttrl_bench.measure.metrics import majority_vote, mean_stderr, pass_at_k


def cumulative_regret(grid: Sequence[float], comparator: Sequence[float], forced: Sequence[float]) -> list[float]:
    """R(grid[i]) for i >= 1: trapezoid area of (comparator - forced) over [0, grid[i]] / grid[i].

    ``grid`` starts at 0 and increases; the result has one value per grid point after the first.
    """
    if len(grid) != len(comparator) or len(grid) != len(forced):
        raise ValueError("grid, comparator and forced curves must have the same length")
    if len(grid) < 2 or grid[0] != 0 or any(b <= a for a, b in zip(grid, grid[1:])):
        raise ValueError(f"the budget grid must start at 0 and increase, got {list(grid)}")
    gap = [c - f for c, f in zip(comparator, forced)]
    out, area = [], 0.0
    for i in range(1, len(grid)):
        area += (grid[i] - grid[i - 1]) * (gap[i] + gap[i - 1]) / 2
        out.append(area / grid[i])
    return out


def parallel_k(budget: float, mean_length: float) -> int:
    """Whole independent samples of mean length ``mean_length`` that fit in ``budget`` tokens."""
    if mean_length <= 0:
        return 0
    return int(math.floor(budget / mean_length + 1e-9))


def expected_maj_at_k(classes: Sequence[int], class_correct: Sequence[bool], k: int, *, draws: int = 256,
                      seed: int = 0) -> float:
    """Expected maj@k over the k-subsets of the samples; the vote follows ``metrics.majority_vote``
    (subsets in sample order). Exact (all subsets) when there are at most ``draws`` of them,
    else the mean over ``draws`` subsets drawn without replacement from a seeded stream."""
    n = len(classes)
    if not 1 <= k <= n:
        raise ValueError(f"maj@k needs 1 <= k <= n={n}, got {k}")
    if k == n:
        return float(majority_vote(classes, class_correct).correct)
    if k == 1:
        return sum(c >= 0 and class_correct[c] for c in classes) / n
    if math.comb(n, k) <= draws:
        subsets = list(itertools.combinations(range(n), k))
        return sum(majority_vote([classes[i] for i in s], class_correct).correct for s in subsets) / len(subsets)
    rng = random.Random(seed)
    hits = 0
    for _ in range(draws):
        subset = sorted(rng.sample(range(n), k))
        hits += majority_vote([classes[i] for i in subset], class_correct).correct
    return hits / draws


def comparator_curve(grid: Sequence[float], forced: Sequence[float], classes: Sequence[int],
                     class_correct: Sequence[bool], mean_length: float, kind: str = "maj") -> tuple[list[float], list[int]]:
    """(accuracy, k) of the parallel comparator at each grid budget for one question."""
    n = len(classes)
    acc, ks = [], []
    for b, j in zip(grid, forced):
        k = min(parallel_k(b, mean_length), n)
        ks.append(k)
        if k == 0:
            acc.append(j)
        elif kind == "maj":
            acc.append(expected_maj_at_k(classes, class_correct, k))
        elif kind == "pass":
            acc.append(pass_at_k(n, sum(c >= 0 and class_correct[c] for c in classes), k))
        else:
            raise ValueError(f"comparator kind must be 'maj' or 'pass', got {kind!r}")
    return acc, ks


def tokens_to_fraction(grid: Sequence[float], mean_curve: Sequence[float], fraction: float = 0.9) -> float:
    """The first grid budget where the mean curve reaches ``fraction`` of its value at the last budget."""
    target = fraction * mean_curve[-1]
    for b, value in zip(grid, mean_curve):
        if value >= target - 1e-12:
            return float(b)
    return float(grid[-1])


def bootstrap_stderr(per_question: Sequence[Sequence[float]], statistic, *, n_boot: int = 200, seed: int = 0) -> float:
    """Std of ``statistic(resampled per-question curves)`` over a bootstrap over questions."""
    q = len(per_question)
    if q < 2:
        return 0.0
    rng = random.Random(seed)
    values = [statistic([per_question[rng.randrange(q)] for _ in range(q)]) for _ in range(n_boot)]
    return statistics_std(values)


def statistics_std(values: Sequence[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1))


def mean_curve(per_question: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """(mean, stderr over questions) at each grid point."""
    return [mean_stderr([row[i] for row in per_question]) for i in range(len(per_question[0]))]
