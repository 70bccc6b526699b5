"""lm-evaluation-harness tasks as ttrl-bench tasks: ``--task lm_eval:NAME`` or a task YAML with
``source: {lm_eval: NAME}``.

lm-eval's own ``TaskManager`` loads the task (its registry plus ``--lm-eval-include-path``), so
its dataset config, ``doc_to_text``/``doc_to_target``, fewshot settings and generation kwargs are
the ones ``lm_eval run`` would use. Only ``generate_until`` tasks fit TTRL (N sampled completions
per question, answers extracted and voted on); any other output type is refused with one line.

What is not lm-eval's: grading. ttrl-bench extracts and compares answers with its own extractor
and math-verify equivalence for the task's ``answer_type``, not with the task's filters and
exact-match metric (see ``ttrl_bench.data.lm_eval_questions`` for the references).
"""
from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from ttrl_bench.errors import UsageError
from ttrl_bench.tasks.checked_yaml import Section
from ttrl_bench.tasks.schema import (
    CHOICE_LETTERS, LM_EVAL_PREFIX as PREFIX, Fields, GenerationDefaults, Prompt, Source, Task, _read_generation,
)

_INTEGER = re.compile(r"^-?[\d,]+(\.0+)?$")
FEWSHOT_SEED = 1234  # lm-eval's default --fewshot_random_seed, so prompts match its own runs
DEFAULT_MAX_GEN_TOKS = 256  # lm-eval's default when generation_kwargs has no max_gen_toks


def load_lm_eval_task(name: str, include_path: str | None) -> Any:
    """lm-eval's task object (a ``ConfigurableTask``, dataset loaded), fewshot seed set as lm-eval sets it."""
    return _load(name, None if include_path is None else str(Path(include_path).expanduser().resolve()))


@lru_cache(maxsize=8)  # the dataset is loaded once per process, for the Task and for its questions
def _load(name: str, include_path: str | None) -> Any:
    try:
        import lm_eval.tasks as lm_tasks
    except ImportError:
        raise UsageError(f"--task {PREFIX}{name}: lm-eval is not installed; expected pip install 'ttrl-bench[lm-eval]'") from None
    if include_path is not None and not Path(include_path).is_dir():
        raise UsageError(f"--lm-eval-include-path: {include_path} is not a directory; expected a folder of lm-eval task YAMLs")
    # lm-eval logs every task it indexes at INFO/WARNING; one error line is what a user should see
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    # Indexing lm-eval's whole registry (thousands of YAMLs) takes minutes on a busy 2-core machine:
    # a task in --lm-eval-include-path is looked up there alone first.
    manager = None
    if include_path is not None:
        manager = lm_tasks.TaskManager(include_path=include_path, include_defaults=False)
        if name not in manager.all_tasks:
            manager = None
    if manager is None:
        manager = lm_tasks.TaskManager(include_path=include_path)
    if name not in manager.all_tasks:
        hint = "" if include_path else " (a task outside lm-eval's registry needs --lm-eval-include-path DIR)"
        raise UsageError(f"--task {PREFIX}{name}: lm-eval knows no task {name!r}{hint}")
    import datasets

    bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # a bad task must end in one error line on stderr
    try:
        loaded = manager.load([name])
    except Exception as exc:  # dataset missing, offline, bad YAML: lm-eval raises many kinds
        text = " ".join(str(exc).split())[:300]
        raise UsageError(f"--task {PREFIX}{name}: lm-eval could not load it ({type(exc).__name__}: {text})") from None
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
    task = _single_task(name, loaded)
    if task.OUTPUT_TYPE != "generate_until":
        raise UsageError(f"--task {PREFIX}{name}: output_type is {task.OUTPUT_TYPE!r}; TTRL needs a generative "
                         "(generate_until) task whose completions carry an answer")
    task.set_fewshot_seed(seed=FEWSHOT_SEED)
    return task


def _single_task(name: str, loaded: dict) -> Any:
    from lm_eval.api.task import Task as LMTask

    leaves = []

    def walk(node: Any) -> None:
        if isinstance(node, LMTask):
            leaves.append(node)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)

    walk(loaded.get("tasks", loaded) if isinstance(loaded, dict) else loaded)
    if len(leaves) != 1:
        raise UsageError(f"--task {PREFIX}{name}: is a group of {len(leaves)} lm-eval tasks; expected one task "
                         "(pass one of its subtasks)")
    return leaves[0]


def generation_kwargs(task: Any) -> dict:
    return dict(task.config.generation_kwargs or {})


def default_generation(task: Any) -> dict:
    """lm-eval's sampling settings as ttrl-bench's generation defaults (n = the task's ``repeats``)."""
    kw = generation_kwargs(task)
    sampled = bool(kw.get("do_sample", False))
    temperature = float(kw.get("temperature", 1.0 if sampled else 0.0))
    return {
        "n": int(task.config.repeats or 1),
        "temperature": temperature if sampled or temperature > 0 else 0.0,
        "top_p": float(kw.get("top_p", 1.0)),
        "top_k": int(kw.get("top_k", 0) or 0),
        "max_new_tokens": int(kw.get("max_gen_toks", DEFAULT_MAX_GEN_TOKS)),
    }


def stop_strings(task: Any) -> list[str]:
    until = generation_kwargs(task).get("until", [])
    return [until] if isinstance(until, str) else [s for s in until if isinstance(s, str) and s]


def lm_eval_task(name: str, include_path: str | None) -> Task:
    """``--task lm_eval:NAME``: lm-eval's prompts, targets and sampling settings; the answer type is
    inferred from the targets (single letters: choice; integers, also after a GSM8K "####": integer;
    else math). A task YAML with ``source: {lm_eval: NAME}`` states it instead."""
    task = load_lm_eval_task(name, include_path)
    return Task(
        name=f"{PREFIX}{name}", description=str(getattr(task.config, "description", None) or "").strip()[:200]
        or f"lm-eval task {name}", source=_source(name, include_path), fields=Fields(question="doc_to_text"),
        prompt=Prompt(), answer_type=infer_answer_type(targets(task)),  # type: ignore[arg-type]
        generation=GenerationDefaults(**default_generation(task)), path=Path(f"{PREFIX}{name}"),
    )


def lm_eval_task_from_yaml(top: Section, path: Path, name: str, answer_type: str) -> Task:
    """A ttrl-bench task file whose questions come from an lm-eval task: ``source: {lm_eval: NAME,
    include_path: DIR}`` (relative to the file), ``answer_type``, ``generation`` and optionally
    ``prompt.chat_template``; no ``fields`` (lm-eval's doc_to_text/doc_to_target say what is what)."""
    for key in ("fields", "choice_seed"):
        if top.has(key):
            raise top.rule(key, "is not used with source.lm_eval (lm-eval's doc_to_text/doc_to_target define the questions)")
    s = top.section("source", {"lm_eval", "include_path"})
    include = s.text("include_path", None)
    if include is not None:
        include = str((path.parent / include).resolve())
    lm_name = s.text("lm_eval")
    load_lm_eval_task(lm_name, include)  # refuse a missing or non-generative task when the file is read
    chat = False
    if top.has("prompt"):
        chat = top.section("prompt", {"chat_template"}).boolean("chat_template")
    return Task(name=name, description=top.free_text("description", ""), source=_source(lm_name, include),
                fields=Fields(question="doc_to_text"), prompt=Prompt(chat_template=chat),
                answer_type=answer_type, generation=_read_generation(top), path=path)  # type: ignore[arg-type]


def _source(name: str, include_path: str | None) -> Source:
    include = None if include_path is None else str(Path(include_path).expanduser().resolve())
    return Source(split="eval", lm_eval=name, include_path=include)


def targets(task: Any) -> list[str]:
    """Each eval doc's target as text (an index into doc_to_choice becomes that choice)."""
    out = []
    for doc in task.eval_docs:
        target = task.doc_to_target(doc)
        if isinstance(target, list):
            target = target[0] if target else ""
        if isinstance(target, int) and not isinstance(target, bool) and task.config.doc_to_choice is not None:
            target = task.doc_to_choice(doc)[target]
        out.append(str(target).strip())
    return out


def final_part(target: str) -> str:
    """GSM8K-style worked solutions end in "#### ANSWER"; the reference is what follows."""
    return target.rsplit("####", 1)[1].strip() if "####" in target else target.strip()


def infer_answer_type(texts: list[str]) -> str:
    finals = [final_part(t) for t in texts]
    if finals and all(len(t) == 1 and t in CHOICE_LETTERS for t in finals):
        return "choice"
    if finals and all(_INTEGER.match(t.replace(" ", "")) for t in finals):
        return "integer"
    return "math"
