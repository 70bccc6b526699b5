"""Task definitions (``tasks/*.yaml``) and the registry that reads and validates them.

A task says where its questions come from (a hub dataset at a pinned revision,
or a builtin generator), which columns hold what, how a question becomes prompt
text, what kind of answer it has, and the generation defaults of its protocol.
Every field is checked when the file is read: a wrong or unknown field is a
``UsageError`` naming the file and the field, never a surprise halfway through
a run.
"""
from __future__ import annotations

import os
from pathlib import Path

from ttrl_bench.errors import UsageError
from ttrl_bench.tasks.checked_yaml import Section, display_path, read_yaml_mapping
from ttrl_bench.tasks.schema import (  # noqa: F401  (re-exported: the task API lives in one place)
    _NAME, ANSWER_TYPES, BUILTIN_SPLITS, CHOICE_LETTERS, DEFAULT_TASKS_DIR, EMBEDDED_MODELS, LM_EVAL_PREFIX,
    TASKS_ENV, BudgetSettings, Fields, GenerationDefaults, Prompt, Source, Task, _read_budget, _read_choice_seed,
    _read_fields, _read_generation, _read_prompt, _read_source, with_fields,
)


def tasks_directory(directory: str | Path | None = None) -> Path:
    """``directory``, else $TTRL_BENCH_TASKS, else the repository's ``tasks/``."""
    if directory is None:
        directory = os.environ.get(TASKS_ENV) or DEFAULT_TASKS_DIR
    return Path(directory)


def load_tasks(directory: str | Path | None = None) -> dict[str, Task]:
    """Every ``*.yaml`` task of a directory, by name (sorted); any invalid file is an error."""
    folder = tasks_directory(directory)
    if not folder.is_dir():
        raise UsageError(f"{display_path(folder)}: no such tasks directory (set {TASKS_ENV} to the folder of task YAML files)")
    tasks = [load_task_file(p) for p in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])]
    by_name: dict[str, Task] = {}
    for task in tasks:
        if task.name in by_name:
            raise UsageError(f"{display_path(task.path)}: task '{task.name}' is also defined in {display_path(by_name[task.name].path)}")
        by_name[task.name] = task
    return dict(sorted(by_name.items()))


def get_task(name: str, directory: str | Path | None = None, *, lm_eval_include_path: str | None = None) -> Task:
    """A task by name, by the path of a task YAML file (``--task my_task.yaml``), or an lm-eval task
    (``--task lm_eval:NAME``, with ``lm_eval_include_path`` for task YAMLs outside lm-eval's registry)."""
    if name.startswith(LM_EVAL_PREFIX):
        from ttrl_bench.tasks.lm_eval_task import lm_eval_task

        return lm_eval_task(name[len(LM_EVAL_PREFIX):], lm_eval_include_path)
    if lm_eval_include_path is not None:
        raise UsageError(f"--lm-eval-include-path: only used with --task {LM_EVAL_PREFIX}NAME, not --task {name}")
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return load_task_file(Path(name))
    tasks = load_tasks(directory)
    if name not in tasks:
        known = ", ".join(tasks) or "none"
        raise UsageError(f"--task: unknown task {name!r}; known tasks: {known} (from {display_path(tasks_directory(directory))})")
    return tasks[name]


def load_task_file(path: Path) -> Task:
    """Read and validate one task file (the task's name is the file's stem)."""
    path = Path(path)
    file = display_path(path)
    top = Section(read_yaml_mapping(path), file, "", {
        "name", "description", "source", "fields", "prompt", "answer_type", "generation", "choice_seed",
        "grading_budget", "model", "budget"})
    name = top.text("name")
    if not _NAME.match(name) or name != path.stem:
        raise top.error("name", f"must equal the file name '{path.stem}' (lowercase letters, digits, '_')")
    answer_type = top.choice("answer_type", ANSWER_TYPES)
    if isinstance(top.data.get("source"), dict) and "lm_eval" in top.data["source"]:
        from ttrl_bench.tasks.lm_eval_task import lm_eval_task_from_yaml

        return lm_eval_task_from_yaml(top, path, name, answer_type)
    fields = _read_fields(top, answer_type)
    return Task(
        name=name,
        description=top.free_text("description", ""),
        source=_read_source(top),
        fields=fields,
        prompt=_read_prompt(top, answer_type),
        answer_type=answer_type,  # type: ignore[arg-type]
        generation=_read_generation(top),
        path=path,
        choice_seed=_read_choice_seed(top, answer_type),
        grading_budget=top.number("grading_budget", None, low=0.0, low_open=True) if top.has("grading_budget") else None,
        model=top.text("model", None),
        budget=_read_budget(top),
    )
