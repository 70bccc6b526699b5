"""The typed contents of a record's ``extra``: what each job adds besides the metrics (``RecordExtra``), and
the check of those types when a record is read. On disk ``extra`` stays the JSON object it always was."""
from __future__ import annotations

import types
import typing
from typing import Any, TypedDict

from ttrl_bench.errors import UsageError


class VoteBaseline(TypedDict):
    """A base record of ``run`` (``pipeline.vote_baseline``): the base model sampled ``samples_per_question``
    times a question, so that its maj@votes can be compared with adaptation at equal votes."""

    votes: int
    samples_per_question: int
    maj_correct: dict[str, bool]  # question id -> is the majority of its first ``votes`` samples right
    note: str


# What ``ttrl-bench budget`` adds (``pipeline.budget.with_budget``): curves over the budget grid, and per
# question the values of the metrics in ``report.stats.BUDGET_METRICS``.
BudgetPerQuestion = TypedDict("BudgetPerQuestion", {
    "budget-acc": dict[str, float], "regret": dict[str, float], "oracle-regret": dict[str, float],
})


class BudgetResults(TypedDict):
    grid: list[int]
    accuracy: list[float]
    regret: list[float]
    regret_oracle: list[float]
    per_question: BudgetPerQuestion


# The keys a record's ``extra`` may hold, by the job that writes them. Any may be absent (another job's
# record, or one written before the key existed); keys not listed are kept as they are. On disk it stays the
# JSON object it always was; ``record_from_dict`` checks the listed keys' types.
RecordExtra = TypedDict("RecordExtra", {
    "prompt_format": dict[str, Any],  # eval, run: the chat template asked and used, the BOS rule
    # run, each adapted method (``adapt.summary.train_summary``): diagnostics and the label-free best step
    "label_accuracy_first": float | None,
    "label_accuracy_last": float | None,
    "reward_accuracy_mean": float | None,
    "best_step": int | None,
    "best_step_pass@1": float | None,
    "best_criterion": str,
    "probe_backend": str,
    "final_backend": str,
    "collapse_warning": str | None,
    "final_step": int,
    "step_seconds_mean": float | None,
    "probe_seconds_mean": float | None,
    "peak_memory_gib": float | None,
    "vote_baseline": VoteBaseline,  # run, the base record
    "budget": BudgetResults,  # ttrl-bench budget
}, total=False)


def check_extra(extra: dict, source: str) -> None:
    """Each listed key present in a record's ``extra`` has its type (``source`` names the file in the error)."""
    for key, kind in typing.get_type_hints(RecordExtra).items():
        if key in extra and not _has_type(extra[key], kind):
            raise UsageError(f"{source}: field extra[{key!r}] must be {_type_name(kind)}, got {extra[key]!r}")


_TYPE_NAMES = {float: "a number", int: "an integer", str: "a string", dict: "an object", list: "a list",
               type(None): "null"}


def _has_type(value: Any, kind: Any) -> bool:
    """Does a JSON value fit ``kind`` (a type of ``RecordExtra``)? Containers are checked by kind, not content."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return any(_has_type(value, k) for k in typing.get_args(kind))
    if typing.is_typeddict(kind):
        kind = dict
    kind = typing.get_origin(kind) or kind
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _type_name(kind: Any) -> str:
    options = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else (kind,)
    return " or ".join(_TYPE_NAMES.get(dict if typing.is_typeddict(k) else typing.get_origin(k) or k, str(k))
                       for k in options)
