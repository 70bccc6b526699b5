"""Metrics over graded samples: pure functions, no I/O, inputs never mutated.

``summarize`` returns the metrics summary (written as metrics.json; ``Record.metrics``
is its "scores")::

    {
      "num_questions": Q, "n": N,                     # N = samples per question
      "scores": {"pass@1": {"mean": m, "stderr": s},  # fractions in [0,1]; stderr = sample std / sqrt(Q)
                 "maj@N": {...}, "pass@2": {...}, "pass@4": {...}, ..., "pass@N": {...}},
      "by_level": {"1": {"num_questions": q, "scores": {...same keys...}}, ...},  # only when some grade has meta["level"]
      "votes": {"ties": t, "no_answer_samples": x, "no_answer_questions": y, "mean_majority_ratio": r},
      "lengths": {"mean_tokens": .., "truncation_rate": ..},                     # None when no completions given
      "grading": {"timeouts": .., "skipped": ..}
    }

Majority vote rule (shared with the training reward, see ``majority_vote``): samples with
no extracted answer (class -1) do not vote; the majority class is the most frequent class;
a tie is broken in favour of the tied class that appears first in sample order (grading
numbers classes by first appearance, so this is also the lowest tied class id), and the
question is counted as a tie. If no sample has an answer, maj is wrong for that question.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from ttrl_bench.measure.summary import LengthStats, LevelSummary, Summary, VoteStats
from ttrl_bench.types import Completion, QuestionGrade

@dataclass(frozen=True)
class QuestionScore:
    id: str
    n: int  # samples
    c: int  # correct samples
    maj_correct: bool
    level: str | None = None


NO_LEVEL = "none"  # by_level key for questions without meta["level"] when other questions have one


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one question (Chen et al. 2021): 1 - C(n-c, k) / C(n, k).

    Uses the product form 1 - prod_{i=n-c+1..n} (1 - k/i), which never builds the huge
    binomials. pass@1 is returned as exactly c / n ("avg@n").
    """
    if n < 0 or c < 0 or k < 1:
        raise ValueError(f"pass_at_k needs n >= 0, c >= 0, k >= 1; got n={n}, c={c}, k={k}")
    if k > n or c > n:
        raise ValueError(f"pass_at_k needs k <= n and c <= n; got n={n}, c={c}, k={k}")
    if k == 1:
        return c / n
    if n - c < k:  # every k-subset contains a correct sample
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def default_ks(n: int) -> list[int]:
    """The k values reported for n samples: 1, 2, 4, ... below n, then n itself."""
    if n < 1:
        raise ValueError(f"default_ks needs n >= 1, got {n}")
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


@dataclass(frozen=True)
class Vote:
    """The majority vote of one question's samples."""

    cls: int  # the winning class, -1 if no sample had an answer
    correct: bool  # the winning class is equivalent to the reference (False without references)
    tie: bool  # another class had as many votes as the winner
    votes: int  # samples in the winning class
    voters: int  # samples with an answer (class >= 0)
    majority_ratio: float  # votes / all samples, no-answer samples included


def majority_vote(classes: Sequence[int], class_correct: Sequence[bool] | None = None) -> Vote:
    """Vote over answer classes by the rule in the module docstring.

    ``class_correct`` is None during label-free training: the vote is then never "correct".
    """
    for cls in classes:
        if cls < -1:
            raise ValueError(f"answer classes must be >= -1 (-1 = no answer), got {cls}")
        if class_correct is not None and cls >= len(class_correct):
            raise ValueError(f"class {cls} has no entry in class_correct (length {len(class_correct)})")
    # Counter keeps insertion order, i.e. first appearance in sample order; max() returns the
    # first maximal element, which is exactly the documented tie-break.
    counts = Counter(cls for cls in classes if cls >= 0)
    n = len(classes)
    if not counts:
        return Vote(cls=-1, correct=False, tie=False, votes=0, voters=0, majority_ratio=0.0)
    winner = max(counts, key=counts.__getitem__)
    top = counts[winner]
    return Vote(
        cls=winner,
        correct=bool(class_correct[winner]) if class_correct is not None else False,
        tie=sum(1 for count in counts.values() if count == top) > 1,
        votes=top,
        voters=sum(counts.values()),
        majority_ratio=top / n,
    )


def mean_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error: sample std (ddof=1) / sqrt(len); stderr 0 for fewer than 2 values."""
    if len(values) == 0:
        raise ValueError("mean_stderr needs at least one value")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, statistics.stdev(values) / math.sqrt(len(values))


def _level(grade: QuestionGrade) -> str | None:
    level = grade.meta.get("level")
    return None if level is None else str(level)


def question_scores(grades: Sequence[QuestionGrade]) -> list[QuestionScore]:
    """Per-question (n, c, maj) for paired comparisons between runs on the same questions."""
    scores = []
    for g in grades:
        vote = majority_vote(g.classes, g.class_correct)  # first: it validates the class ids
        scores.append(QuestionScore(id=g.question_id, n=g.n, c=sum(g.correct), maj_correct=vote.correct, level=_level(g)))
    return scores


def _scores(grades: Sequence[QuestionGrade], votes: Sequence[Vote], n: int, ks: Sequence[int]) -> dict[str, dict[str, float]]:
    correct_counts = [sum(g.correct) for g in grades]
    per_key: dict[str, list[float]] = {"pass@1": [pass_at_k(n, c, 1) for c in correct_counts]}
    per_key[f"maj@{n}"] = [float(v.correct) for v in votes]
    for k in ks:
        if k != 1:
            per_key[f"pass@{k}"] = [pass_at_k(n, c, k) for c in correct_counts]
    scores = {}
    for key, values in per_key.items():
        mean, stderr = mean_stderr(values)
        scores[key] = {"mean": mean, "stderr": stderr}
    return scores


def level_order(level: str) -> tuple[int, float, str]:
    # Numeric levels in numeric order ("2" before "10"), then the rest alphabetically.
    try:
        return (0, float(level), level)
    except ValueError:
        return (1, 0.0, level)


def _lengths(completions: Sequence[Sequence[Completion]] | None, num_questions: int, n: int) -> LengthStats:
    if completions is None:
        return LengthStats(None, None)
    if len(completions) != num_questions:
        raise ValueError(f"completions hold {len(completions)} questions, grades hold {num_questions}")
    for i, group in enumerate(completions):
        if len(group) != n:
            raise ValueError(f"completions of question {i} hold {len(group)} samples, expected n={n}")
    flat = [c for group in completions for c in group]
    return LengthStats(
        mean_tokens=statistics.fmean(c.num_tokens for c in flat),
        truncation_rate=sum(c.finish_reason == "length" for c in flat) / len(flat),
    )


def summarize(
    grades: Sequence[QuestionGrade],
    completions: Sequence[Sequence[Completion]] | None = None,
    ks: Sequence[int] | None = None,
) -> Summary:
    """The metrics summary of a graded run (``Summary.to_dict`` gives the JSON schema above).

    ``ks`` picks the pass@k values (default ``default_ks(n)``); pass@1 and maj@n are always
    reported. ``completions[i][j]`` is sample j of question i, for lengths and truncation.
    """
    if not grades:
        raise ValueError("summarize needs at least one graded question")
    sizes = {g.n for g in grades}
    if len(sizes) != 1:
        raise ValueError(f"all questions must have the same number of samples, got n in {sorted(sizes)}")
    n = sizes.pop()
    if n < 1:
        raise ValueError("questions must have at least one sample")
    ks = sorted(set(default_ks(n) if ks is None else ks))
    for k in ks:
        if not 1 <= k <= n:
            raise ValueError(f"pass@k needs 1 <= k <= n={n}, got k={k}")

    votes = [majority_vote(g.classes, g.class_correct) for g in grades]
    by_level: dict[str, LevelSummary] = {}
    levels = [_level(g) for g in grades]
    if any(level is not None for level in levels):
        groups: dict[str, list[int]] = {}
        for i, level in enumerate(levels):
            groups.setdefault(NO_LEVEL if level is None else level, []).append(i)
        by_level = {
            level: LevelSummary(
                len(groups[level]), _scores([grades[i] for i in groups[level]], [votes[i] for i in groups[level]], n, ks)
            )
            for level in sorted(groups, key=level_order)
        }
    return Summary(
        num_questions=len(grades),
        n=n,
        scores=_scores(grades, votes, n, ks),
        votes=VoteStats(
            ties=sum(v.tie for v in votes),
            no_answer_samples=sum(g.classes.count(-1) for g in grades),
            no_answer_questions=sum(v.voters == 0 for v in votes),
            mean_majority_ratio=statistics.fmean(v.majority_ratio for v in votes),
        ),
        lengths=_lengths(completions, len(grades), n),
        grading_timeouts=sum(g.timeouts for g in grades),
        grading_skipped=sum(g.skipped for g in grades),
        by_level=by_level,
    )
