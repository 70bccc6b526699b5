"""The typed summary of one measurement (what ``metrics.summarize`` returns; ``metrics.json`` on disk).

Fractions are in [0, 1]; a ``Stat`` is a mean over questions and its standard error
(sample std / sqrt(#questions)). ``to_dict`` gives the JSON layout documented in
``ttrl_bench.measure.metrics``; ``from_dict`` reads it back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict


class Stat(TypedDict):
    mean: float
    stderr: float


@dataclass(frozen=True)
class VoteStats:
    ties: int  # questions whose majority was a tie (broken by first appearance)
    no_answer_samples: int
    no_answer_questions: int  # questions where no sample had an answer (maj counts as wrong)
    mean_majority_ratio: float  # share of answering samples in the majority class, mean over questions


@dataclass(frozen=True)
class LengthStats:
    mean_tokens: float | None  # None when the completions were not given
    truncation_rate: float | None


@dataclass(frozen=True)
class LevelSummary:
    num_questions: int
    scores: dict[str, Stat]


@dataclass(frozen=True)
class Summary:
    num_questions: int
    n: int  # samples per question
    scores: dict[str, Stat]  # "pass@1", "maj@N", "pass@k" ...
    votes: VoteStats
    lengths: LengthStats
    grading_timeouts: int = 0  # comparisons that hit the per-call time limit (counted as "not equal")
    grading_skipped: int = 0  # comparisons left undone when a question's grading budget ran out
    by_level: dict[str, LevelSummary] = field(default_factory=dict)  # empty when no question has a level

    def mean(self, metric: str) -> float:
        return self.scores[metric]["mean"]

    @property
    def maj_key(self) -> str:
        return f"maj@{self.n}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"num_questions": self.num_questions, "n": self.n, "scores": self.scores}
        if self.by_level:
            out["by_level"] = {k: {"num_questions": v.num_questions, "scores": v.scores} for k, v in self.by_level.items()}
        out["votes"] = vars(self.votes).copy()
        out["lengths"] = vars(self.lengths).copy()
        out["grading"] = {"timeouts": self.grading_timeouts, "skipped": self.grading_skipped}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Summary":
        return cls(
            num_questions=d["num_questions"], n=d["n"], scores=d["scores"], votes=VoteStats(**d["votes"]),
            lengths=LengthStats(**d["lengths"]), grading_timeouts=d.get("grading", {}).get("timeouts", 0),
            grading_skipped=d.get("grading", {}).get("skipped", 0),
            by_level={k: LevelSummary(v["num_questions"], v["scores"]) for k, v in d.get("by_level", {}).items()},
        )
