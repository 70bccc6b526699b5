"""A task's rows -> ``Question``s (prompt text, reference answer, metadata), and their fingerprint.

Rows come from the task's builtin generator, a local file (``--data``: JSON,
JSONL or parquet, read through HF ``datasets``), or the hub at the task's pinned
revision. Whatever the source, a row is turned into a question the same way, and
a row the task cannot use is a ``UsageError`` naming the file, the row and the
field.
"""
from __future__ import annotations

import hashlib
import json
import random
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ttrl_bench.data.sources import read_rows
from ttrl_bench.errors import UsageError
from ttrl_bench.tasks import CHOICE_LETTERS, Task
from ttrl_bench.types import Question


def load_questions(task: Task, data_path: str | Path | None = None, limit: int | None = None,
                   trust_remote_code: bool = False) -> list[Question]:
    """The task's questions in dataset order; ``limit`` keeps the first ``limit`` rows."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UsageError(f"--limit: must be an integer >= 1, got {limit!r}")
    if task.source.lm_eval is not None:
        from ttrl_bench.data.lm_eval_questions import lm_eval_questions

        return lm_eval_questions(task, data_path, limit)
    rows, origin = read_rows(task, data_path, limit, trust_remote_code)
    if not rows:
        raise UsageError(f"{origin}: holds no rows")
    _check_columns(task, rows, origin)
    questions = [_question(task, row, index, origin) for index, row in enumerate(rows)]
    _check_unique_ids(questions, task, origin)
    return questions


def data_fingerprint(questions: list[Question]) -> str:
    """Identity of a question set: sha256 (first 16 hex digits) of its ids, prompts and references, in order."""
    canonical = json.dumps([[q.id, q.prompt, q.reference] for q in questions], ensure_ascii=False,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def shuffle_choices(texts: list[str], seed: int, question_id: str) -> tuple[list[str], int]:
    """``texts`` (correct first) in a seeded order, and the new position of the correct one.

    Seeded per question (seed and id), so a question's order does not depend on
    which other questions were loaded (``--limit``) or on the row order.
    """
    order = list(range(len(texts)))
    random.Random(f"{seed}:{question_id}").shuffle(order)
    return [texts[i] for i in order], order.index(0)


def _question(task: Task, row: dict[str, Any], index: int, origin: str) -> Question:
    where = f"{origin}: row {index + 1}"
    f = task.fields
    qid = _scalar_text(_cell(row, f.id, "id", where, task), f.id, where) if f.id else str(index)
    # stripped: copies of a dataset differ in trailing whitespace, and it must not change the prompt
    question = _text(row, f.question, "question", where, task).strip()
    meta: dict[str, Any] = {}
    if task.answer_type == "choice":
        texts = [_text(row, column, "choices", where, task).strip() for column in f.choices]
        shuffled, correct = shuffle_choices(texts, task.choice_seed or 0, qid)
        prompt = task.prompt.render(question, shuffled)
        reference = CHOICE_LETTERS[correct]
        meta["choices"] = shuffled
        meta["choice_seed"] = task.choice_seed
    else:
        prompt = task.prompt.render(question)
        reference = _reference(task, _cell(row, f.answer, "answer", where, task), where)
    if f.level:
        # a string key: records and per-level tables compare levels as text ("3", "Level 3")
        meta["level"] = _scalar_text(_cell(row, f.level, "level", where, task), f.level, where)
    for column in f.meta:  # optional: copied when the row has it
        if row.get(column) is not None:
            meta[column] = _json_value(row[column])
    return Question(id=qid, prompt=prompt, reference=reference, meta=meta)


def _required_columns(task: Task) -> list[tuple[str, str]]:
    """(column, role) of every column a row must have; ``fields.meta`` columns are optional."""
    f = task.fields
    roles = [(f.id, "id"), (f.question, "question"), (f.answer, "answer"), (f.level, "level")]
    roles += [(c, "choices") for c in f.choices]
    return [(column, role) for column, role in roles if column is not None]


def _check_columns(task: Task, rows: list[dict[str, Any]], origin: str) -> None:
    """Every required column that no row holds, named at once, with how to map columns."""
    present = {k for row in rows for k, v in row.items() if v is not None}
    missing = [(column, role) for column, role in _required_columns(task) if column not in present]
    if not missing:
        return
    listed = ", ".join(f"'{column}' (fields.{role})" for column, role in missing)
    example = ",".join(f"{role}=COLUMN" for _, role in missing if role in ("question", "answer"))
    optional = [role for _, role in missing if role in ("id", "level")]
    if optional:  # these roles can also be dropped
        example = ",".join(filter(None, [example, *(f"{role}=COLUMN (or {role}= for none)" for role in optional)]))
    if any(role == "choices" for _, role in missing):
        example = ",".join(filter(None, [example, "choices=RIGHT|WRONG1|WRONG2"]))
    columns = ", ".join(sorted(present)) or "none"
    raise UsageError(
        f"{origin}: missing field{'s' if len(missing) > 1 else ''} {listed} of task {task.name}; columns present: "
        f"{columns}. Map the file's columns with --fields {example}, or pass your own task file with --task FILE.yaml"
    )


def _cell(row: dict[str, Any], column: str | None, role: str, where: str, task: Task) -> Any:
    # datasets fills a column missing from some rows with None, so None means "missing" too
    value = row.get(column) if column is not None else None
    if value is None:
        present = ", ".join(sorted(k for k, v in row.items() if v is not None)) or "none"
        raise UsageError(f"{where}: missing field '{column}' (the task {task.name}'s fields.{role}); "
                         f"fields present: {present}")
    return value


def _text(row: dict[str, Any], column: str, role: str, where: str, task: Task) -> str:
    value = _cell(row, column, role, where, task)
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{where}: field '{column}' must be a non-empty text, got {value!r}")
    return value


def _scalar_text(value: Any, column: str, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UsageError(f"{where}: field '{column}' must be a text or a number, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 3.0 -> "3": parquet and JSON readers may widen integer columns to float
    text = str(value).strip()
    if not text:
        raise UsageError(f"{where}: field '{column}' is empty")
    return text


def _reference(task: Task, value: Any, where: str) -> str:
    column = task.fields.answer
    text = _scalar_text(value, column, where)
    marker = task.fields.answer_after
    if marker is not None:
        if marker not in text:
            raise UsageError(f"{where}: field '{column}' has no '{marker}' before its final answer "
                             f"(the task {task.name}'s fields.answer_after)")
        text = text.rsplit(marker, 1)[1].strip()
    if task.answer_type == "integer":
        return _integer_text(text, column, where)
    if not text:
        raise UsageError(f"{where}: field '{column}' holds an empty answer")
    return text


def _integer_text(text: str, column: str, where: str) -> str:
    """Canonical decimal form: "1,000" -> "1000", "025" -> "25", "142.0" -> "142"."""
    cleaned = text.replace(",", "").replace(" ", "")
    try:
        number = Decimal(cleaned)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number != number.to_integral_value():
        raise UsageError(f"{where}: field '{column}' must hold an integer for answer_type integer, got {text!r}")
    return str(int(number))


def _json_value(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def _check_unique_ids(questions: list[Question], task: Task, origin: str) -> None:
    first: dict[str, int] = {}
    for index, q in enumerate(questions):
        if q.id in first:
            raise UsageError(f"{origin}: rows {first[q.id] + 1} and {index + 1} share the id {q.id!r} "
                             f"(field '{task.fields.id}'); ids must be unique")
        first[q.id] = index
