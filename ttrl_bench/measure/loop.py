"""One measurement: questions -> samples -> grades -> metrics, resumable through a SampleStore.

Used by ``eval`` (a run directory on disk) and by adaptation (the policy measured
every K steps, in memory).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from tqdm.auto import tqdm

from ttrl_bench.grading import Grader
from ttrl_bench.measure.metrics import summarize
from ttrl_bench.measure.summary import Summary
from ttrl_bench.sampling import PartialSample, Sampler, prompt_for
from ttrl_bench.measure.store import SampleStore
from ttrl_bench.types import AnswerType, Completion, Question, QuestionGrade, SamplingParams


def chunk_size_for(n: int, budget: int = 256) -> int:
    """Questions per sampler call: about ``budget`` sequences, at least one question."""
    return max(1, budget // max(1, n))


def chunk_seed(seed: int, first_question_id: str) -> int:
    """A chunk's seed depends on the run seed and the chunk, not on what ran before (resume = no resume)."""
    digest = hashlib.sha256(f"{seed}:{first_question_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@dataclass(frozen=True)
class Measurement:
    grades: list[QuestionGrade]
    completions: list[list[Completion]]
    summary: Summary


def sample_all(
    questions: Sequence[Question],
    sampler_factory: Callable[[], Sampler],
    params: SamplingParams,
    *,
    chat_template: bool,
    store: SampleStore | None = None,
    chunk: int | None = None,
    progress: bool = True,
    desc: str = "sampling",
) -> list[list[Completion]]:
    """Completions for every question, reusing finished ones from ``store``.

    The sampler is built only if something is left to sample, so re-running a
    finished run never loads the model.
    """
    done = store.done() if store is not None else {}
    chunk = chunk or chunk_size_for(params.n)
    chunks = [questions[i : i + chunk] for i in range(0, len(questions), chunk)]
    results: dict[str, list[Completion]] = {q.id: done[q.id] for q in questions if q.id in done}
    pending = [c for c in chunks if any(q.id not in results for q in c)]
    bar = tqdm(total=len(questions), initial=len(results), desc=desc, unit="q", disable=not progress, leave=False)
    sampler = sampler_factory() if pending else None
    for group in pending:
        # Samplers seed prompt i of a call from (params.seed + i) (see sampling.prompt_seed), so a
        # chunk cut short by an interruption is finished with the seeds an uninterrupted run used.
        base_seed = chunk_seed(params.seed, group[0].id)
        for offset, todo in _missing_runs(group, results):
            prompts = [prompt_for(sampler, q.prompt, chat_template) for q in todo]
            try:
                outs = dict(enumerate(sampler.sample(prompts, replace(params, seed=base_seed + offset))))
            except PartialSample as partial:  # a server failed for good: keep what did finish, then fail
                _keep(todo, prompts, partial.finished, store, results)
                sampler.close()
                raise partial.cause from None
            _keep(todo, prompts, outs, store, results)
            bar.update(len(todo))
    bar.refresh()  # show the final count even when sampling finished within tqdm's refresh interval
    bar.close()
    if sampler is not None:
        sampler.close()
    return [results[q.id] for q in questions]


def _keep(todo: Sequence[Question], prompts: Sequence[str], outs: dict[int, list[Completion]],
          store: SampleStore | None, results: dict) -> None:
    for i, q in enumerate(todo):
        if i in outs:
            if store is not None:
                store.append(q.id, outs[i], prompt=prompts[i])  # the exact text the model saw
            results[q.id] = outs[i]


def _missing_runs(group: Sequence[Question], results: dict) -> list[tuple[int, list[Question]]]:
    """Contiguous runs of not-yet-sampled questions in a chunk, with their offsets."""
    runs: list[tuple[int, list[Question]]] = []
    for i, q in enumerate(group):
        if q.id in results:
            continue
        if runs and runs[-1][0] + len(runs[-1][1]) == i:
            runs[-1][1].append(q)
        else:
            runs.append((i, [q]))
    return runs


def measure(
    questions: Sequence[Question],
    sampler_factory: Callable[[], Sampler],
    params: SamplingParams,
    *,
    answer_type: AnswerType,
    chat_template: bool,
    grader: Grader,
    store: SampleStore | None = None,
    progress: bool = True,
    desc: str = "sampling",
) -> Measurement:
    completions = sample_all(
        questions, sampler_factory, params, chat_template=chat_template, store=store, progress=progress, desc=desc
    )
    graded = [cut_at_stops(comps, q.meta.get("until") or ()) for q, comps in zip(questions, completions)]
    grades = grader.grade_many(list(zip(questions, graded)), answer_type)
    return Measurement(grades=grades, completions=completions, summary=summarize(grades, completions))


def cut_at_stops(completions: list[Completion], until: Sequence[str]) -> list[Completion]:
    """Completions cut at the first of the question's stop strings (lm-eval tasks' ``until``), as lm-eval
    cuts them before scoring. Sampling ignores them (the text before a stop string does not depend on
    stopping there); samples.jsonl keeps the whole text."""
    if not until:
        return completions
    out = []
    for c in completions:
        text = cut_text(c.text, until)
        out.append(c if text == c.text else replace(c, text=text))
    return out


def cut_text(text: str, until: Sequence[str]) -> str:
    """``text`` up to the first occurrence of any of ``until`` (unchanged if none occurs)."""
    return text[: min((i for i in (text.find(s) for s in until if s) if i >= 0), default=len(text))]
