"""The plain records that flow between the stages (task -> questions -> samples -> grades).

Each stage knows only the types on its two sides; all of them are frozen
dataclasses that turn into JSON with ``dataclasses.asdict``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

AnswerType = Literal["math", "integer", "choice"]
FinishReason = Literal["stop", "length"]
# The letters a choice task may use, in order (a task has 2 to 10 choices). The task
# validator, choice extraction, canonical form and grader all read this one constant.
CHOICE_LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Question:
    """One test item: the prompt text (before any chat template) and its reference answer."""

    id: str
    prompt: str
    reference: str
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. {"level": 3} or {"choices": [...]}


@dataclass(frozen=True)
class SamplingParams:
    n: int
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int
    top_k: int = 0  # 0 = no top-k cut

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class Completion:
    text: str
    num_tokens: int
    finish_reason: FinishReason


@dataclass(frozen=True)
class QuestionGrade:
    """The graded samples of one question.

    ``classes[i]`` is the equivalence class of sample i (-1: no answer could be
    extracted); ``class_correct[j]`` says whether class j is equivalent to the
    reference. Classes are numbered in order of first appearance.
    """

    question_id: str
    answers: list[str | None]
    classes: list[int]
    class_correct: list[bool]
    timeouts: int = 0  # math-verify operations (parses, comparisons) that hit the time limit ("not equal")
    # math-verify operations not run ("not equal"): the question's grading budget was spent, or they
    # involved an answer that had already timed out in this question
    skipped: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.classes)

    @property
    def correct(self) -> list[bool]:
        return [c >= 0 and self.class_correct[c] for c in self.classes]
