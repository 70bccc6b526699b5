"""Views of a measurement: the first k samples of every question, or a subset of its questions.

The base model is measured once with max(N, votes) samples a question (``run``'s vote baseline);
its rows in the tables use the first N, so they are measured exactly like an adapted model's
N samples, and maj@votes uses the first ``votes``. A held-out split reports each part's questions.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from ttrl_bench.measure.loop import Measurement
from ttrl_bench.measure.metrics import majority_vote, summarize
from ttrl_bench.types import QuestionGrade


def _first(grade: QuestionGrade, k: int) -> QuestionGrade:
    # Classes are numbered by first appearance, so a prefix keeps that numbering; class_correct may
    # keep entries for classes only later samples hold, which no vote over the prefix can pick.
    return replace(grade, answers=grade.answers[:k], classes=grade.classes[:k])


def first_samples(m: Measurement, k: int) -> Measurement:
    """The measurement as if only the first ``k`` samples of each question had been drawn."""
    n = min(g.n for g in m.grades)
    if not 1 <= k <= n:
        raise ValueError(f"first_samples needs 1 <= k <= {n} (samples per question), got {k}")
    if k == n and all(g.n == n for g in m.grades):
        return m
    grades = [_first(g, k) for g in m.grades]
    completions = [list(c[:k]) for c in m.completions]
    return Measurement(grades=grades, completions=completions, summary=summarize(grades, completions))


def only_questions(m: Measurement, ids: Iterable[str]) -> Measurement:
    """The measurement restricted to the questions ``ids`` (kept in the measurement's order)."""
    keep = frozenset(ids)
    pairs = [(g, c) for g, c in zip(m.grades, m.completions) if g.question_id in keep]
    if not pairs:
        raise ValueError("only_questions: none of the ids is in the measurement")
    grades = [g for g, _ in pairs]
    completions = [c for _, c in pairs]
    return Measurement(grades=grades, completions=completions, summary=summarize(grades, completions))


def votes_correct(m: Measurement, k: int) -> dict[str, bool]:
    """Per question: is the majority answer of its first ``k`` samples right (maj@k)."""
    return {g.question_id: majority_vote(g.classes[:k], g.class_correct).correct for g in m.grades}
