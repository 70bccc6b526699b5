"""Paired statistics for two results on the same questions.

The test is a paired sign-flip permutation test over questions: under "no difference" the two
runs' scores of a question are exchangeable, so each per-question difference d_i = b_i - a_i is
as likely to have either sign. The observed mean difference is compared with the means of the
differences under random sign flips (all 2^Q of them when Q <= 13, else ``n_boot`` random ones):

    p_worse  = (1 + #{flipped mean <= observed mean}) / (n + 1)   H1: b is worse than a
    p_better = (1 + #{flipped mean >= observed mean}) / (n + 1)   H1: b is better than a
    p_value  = min(1, 2 * min(p_worse, p_better))                  two-sided

(exact enumeration uses #/2^Q). Such a test's false-alarm rate is at most alpha at any number of
questions; the percentile bootstrap used before was liberal with few (6.2% at alpha 0.05 with 30
questions, AIME's size). Ties (flipped mean equal to the observed) count against both alternatives.

The (1 - alpha) interval shown next to the verdict is still the paired percentile bootstrap over
questions: a description of the uncertainty, not the test.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ttrl_bench.measure import metrics
from ttrl_bench.errors import UsageError
from ttrl_bench.measure.records import Record

# Rows of resampled indices drawn at once: bounds memory (n_boot x Q int64) for
# large question sets (GSM8K has 1319) without changing the draws' meaning.
_MAX_INDICES_PER_CHUNK = 2_000_000

_METRIC_RE = re.compile(r"(pass|maj)@([1-9][0-9]*)")
# Written by `ttrl-bench budget` (fractions, per question in record.extra["budget"]["per_question"]):
# the forced accuracy at the largest budget, and cumulative regret vs the parallel maj@k comparator
# and vs the oracle at that budget. Regrets are better when lower (see LOWER_IS_BETTER).
BUDGET_METRICS = ("budget-acc", "regret", "oracle-regret")
LOWER_IS_BETTER = frozenset({"regret", "oracle-regret"})


@dataclass(frozen=True)
class PairedDiff:
    """b - a over the same questions; scores are in the units given (fractions for records)."""

    mean_diff: float
    stderr: float  # sample std of the per-question differences / sqrt(n_questions)
    ci_low: float  # two-sided (1 - alpha) percentile bootstrap interval of mean_diff
    ci_high: float
    p_value: float  # two-sided
    p_worse: float  # one-sided, H1: b < a (the regression test)
    p_better: float  # one-sided, H1: b > a
    n_questions: int


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    n_boot: int = 10000,
    seed: int = 0,
    alpha: float = 0.05,
) -> PairedDiff:
    """Paired bootstrap comparison of per-question scores ``b`` against ``a`` (same order)."""
    a_arr = np.asarray(a, dtype=float)
    b_arr = np.asarray(b, dtype=float)
    if a_arr.ndim != 1 or a_arr.shape != b_arr.shape:
        raise ValueError(f"paired scores need two flat sequences of equal length, got {a_arr.shape} and {b_arr.shape}")
    if a_arr.size == 0:
        raise ValueError("paired scores are empty")
    if not (np.all(np.isfinite(a_arr)) and np.all(np.isfinite(b_arr))):
        raise ValueError("paired scores must be finite numbers")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")

    diffs = b_arr - a_arr
    q = diffs.size
    stderr = float(diffs.std(ddof=1) / math.sqrt(q)) if q > 1 else 0.0
    boot = _bootstrap_means(diffs, n_boot, seed)
    p_worse, p_better = sign_flip_p_values(diffs, n_boot, seed)
    ci_low, ci_high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return PairedDiff(
        mean_diff=float(diffs.mean()),
        stderr=stderr,
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        p_value=float(min(1.0, 2 * min(p_worse, p_better))),
        p_worse=float(p_worse),
        p_better=float(p_better),
        n_questions=q,
    )


_EXACT_MAX_QUESTIONS = 13  # 2^13 = 8192 sign vectors: enumerate them rather than sample


def sign_flip_p_values(diffs: np.ndarray, n_perm: int, seed: int) -> tuple[float, float]:
    """One-sided p-values (b worse, b better) of the paired sign-flip permutation test."""
    q = diffs.size
    observed = round(float(diffs.mean()), 12)
    if q <= _EXACT_MAX_QUESTIONS:
        signs = 1 - 2 * ((np.arange(2**q)[:, None] >> np.arange(q)) & 1)  # every sign vector, identity first
        means = np.round((signs * diffs).mean(axis=1), 12)
        return float(np.mean(means <= observed)), float(np.mean(means >= observed))
    rng = np.random.default_rng(seed)
    rows_per_chunk = max(1, _MAX_INDICES_PER_CHUNK // q)
    below = above = 0
    for start in range(0, n_perm, rows_per_chunk):
        rows = min(n_perm, start + rows_per_chunk) - start
        signs = rng.integers(0, 2, size=(rows, q), dtype=np.int8) * 2 - 1
        # the same rounding as the observed mean: flips that cancel exactly count as ties
        means = np.round((signs * diffs).mean(axis=1), 12)
        below += int(np.count_nonzero(means <= observed))
        above += int(np.count_nonzero(means >= observed))
    return (1 + below) / (n_perm + 1), (1 + above) / (n_perm + 1)


def _bootstrap_means(diffs: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = diffs.size
    rows_per_chunk = max(1, _MAX_INDICES_PER_CHUNK // q)
    means = np.empty(n_boot)
    for start in range(0, n_boot, rows_per_chunk):
        stop = min(n_boot, start + rows_per_chunk)
        idx = rng.integers(0, q, size=(stop - start, q))
        means[start:stop] = diffs[idx].mean(axis=1)
    # A resample whose differences cancel (e.g. +1/3 and -1/3) can miss 0 by an ulp;
    # rounding far below any score's resolution makes such ties count as ties.
    return np.round(means, 12)


def parse_metric(name: str, *, flag: str = "--metric") -> tuple[str, int]:
    """'pass@4' -> ('pass', 4), 'maj@16' -> ('maj', 16), 'regret' -> ('regret', 0) (a BUDGET_METRICS
    name); anything else is a UsageError naming ``flag``."""
    if name in BUDGET_METRICS:
        return name, 0
    match = _METRIC_RE.fullmatch(name)
    if not match:
        raise UsageError(f"{flag} {name!r}: expected pass@K or maj@N with a positive integer, "
                         f"or one of {', '.join(BUDGET_METRICS)} (from `ttrl-bench budget`)")
    return match.group(1), int(match.group(2))


def per_question_metric(record: Record, metric: str) -> dict[str, float]:
    """Per-question score of ``record`` for ``metric``, keyed by question id.

    pass@1 -> c/n; pass@k -> unbiased pass@k; maj@N -> 1.0 if the majority answer is
    correct. maj@N requires every question to have N samples, pass@k at least k.
    """
    kind, k = parse_metric(metric)
    label = f"record ({record.model} / {record.task} / {record.method})"
    if kind in BUDGET_METRICS:
        values = (record.extra.get("budget") or {}).get("per_question", {}).get(kind)
        if not isinstance(values, dict) or not values:
            raise UsageError(f"--metric {metric}: {label} has no budget results; run `ttrl-bench budget` on it first")
        return {str(q): float(v) for q, v in values.items()}
    scores: dict[str, float] = {}
    for q in record.per_question:
        if q.id in scores:
            raise UsageError(f"{label}: question id {q.id!r} appears twice in 'per_question'")
        if not (isinstance(q.n, int) and isinstance(q.c, int) and 0 <= q.c <= q.n and q.n >= 1):
            raise UsageError(f"{label}: question {q.id!r} has n={q.n!r}, c={q.c!r}; expected integers 0 <= c <= n, n >= 1")
        if kind == "maj":
            if q.n != k:
                raise UsageError(f"--metric {metric}: {label} has {q.n} samples for question {q.id!r}, not {k}")
            scores[q.id] = 1.0 if q.maj_correct else 0.0
        elif k == 1:
            scores[q.id] = q.c / q.n
        else:
            if q.n < k:
                raise UsageError(f"--metric {metric}: {label} has only {q.n} samples for question {q.id!r}")
            scores[q.id] = float(metrics.pass_at_k(q.n, q.c, k))
    if not scores:
        raise UsageError(f"{label}: field 'per_question' is empty")
    return scores
