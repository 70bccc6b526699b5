"""Questions of an lm-eval task, built by lm-eval itself (``build_all_requests``: fewshot context,
doc_to_text, the task's dataset split), so the prompt is the very context ``lm_eval run`` would send.

The reference is lm-eval's ``doc_to_target`` reduced to a final answer for ttrl-bench's grader:
the text after a GSM8K-style "####" if present, then, for integer tasks, its canonical integer,
for math tasks the text itself. ``meta`` keeps the lm-eval doc id, the
doc itself (the lm-eval samples file needs it) and the task's ``until`` stop strings (completions
are cut there before grading, as lm-eval cuts them).
"""
from __future__ import annotations

import json
from typing import Any

from ttrl_bench.errors import UsageError
from ttrl_bench.tasks import Task
from ttrl_bench.tasks.lm_eval_task import final_part, load_lm_eval_task, stop_strings, targets
from ttrl_bench.types import Question


def lm_eval_questions(task: Task, data_path: str | None, limit: int | None) -> list[Question]:
    if data_path is not None:
        raise UsageError(f"--data: not used with the lm-eval task {task.source.lm_eval} (its YAML names the dataset; "
                         "point dataset_kwargs.data_files at a local file instead)")
    lm = load_lm_eval_task(task.source.lm_eval, task.source.include_path)
    lm.set_fewshot_seed(seed=1234)  # build_all_requests draws fewshot examples: same draw on every call
    lm.build_all_requests(limit=limit, rank=0, world_size=1)
    refs = targets(lm)
    until = stop_strings(lm)
    questions = []
    for inst in lm.instances:
        doc_id = int(inst.doc_id)
        context = inst.arguments[0]
        reference = _reference(refs[doc_id], task.answer_type, task.source.lm_eval, doc_id)
        meta = {"lm_eval_doc_id": doc_id, "lm_eval_doc": _plain(inst.doc), "until": until,
                "lm_eval_target": refs[doc_id]}
        questions.append(Question(id=str(doc_id), prompt=context, reference=reference, meta=meta))
    return questions


def _reference(target: str, answer_type: str, name: str, doc_id: int) -> str:
    text = final_part(target)
    if answer_type == "integer":
        cleaned = text.replace(",", "").replace(" ", "").removesuffix(".0")
        try:
            return str(int(cleaned))
        except ValueError:
            raise UsageError(f"lm-eval task {name}: doc {doc_id}: target {target!r} is not an integer; "
                             "expected answer_type math for this task") from None
    if answer_type == "choice":
        return text.strip("() ").upper()
    return text  # math: the grader's equivalence (math-verify) reads LaTeX, \boxed{} included


def _plain(doc: Any) -> Any:
    """The doc as JSON data (datasets rows may hold dates, bytes, numpy values)."""
    return json.loads(json.dumps(doc, default=str))
