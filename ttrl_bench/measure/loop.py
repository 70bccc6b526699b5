"""One measurement: questions -> samples -> grades -> metrics, resumable through a SampleStore.

Used by ``eval`` (a run directory on disk) and by adaptation (the policy measured
every K steps, in memory).
"""
from __future__ import annotations

import hashlib
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from tqdm.auto import tqdm

from ttrl_bench.grading import Grader
from ttrl_bench.measure.metrics import summarize
from ttrl_bench.measure.summary import Summary
from ttrl_bench.sampling import PartialSample, Sampler, prompt_for
from ttrl_bench.measure.store import SampleStore
from ttrl_bench.types import AnswerType, Completion, Question, QuestionGrade, SamplingParams


# Tokens (n x (prompt + max_new_tokens), an upper bound) per sampler call. A chunk is the
# unit a kill can lose and the progress bar's step, so it should take minutes at most:
# on CPU a 270M model samples ~30-150 tokens/s; a GPU's vLLM ~1000x that, and its
# throughput needs many sequences in flight.
CHUNK_TOKENS = {"cpu": 8192, "gpu": 262144}


def chunk_size_for(n: int, budget: int = 256) -> int:
    """Questions per sampler call by count: about ``budget`` sequences, at least one question."""
    return max(1, budget // max(1, n))


def default_chunk_tokens() -> int:
    import torch

    return CHUNK_TOKENS["gpu" if torch.cuda.is_available() else "cpu"]


def plan_chunks(prompt_tokens: Sequence[int], params: SamplingParams, max_questions: int, max_tokens: int) -> list[range]:
    """Consecutive questions per sampler call: at most ``max_questions``, and at most ``max_tokens`` tokens.

    A question costs ``n x (prompt tokens + max_new_tokens)``; a chunk holds at least one
    question. A function of the prompts' lengths and the parameters only, so an
    interrupted run, resumed, cuts the same chunks (and draws with the same chunk seeds).
    """
    chunks: list[range] = []
    start, used = 0, 0
    for i, length in enumerate(prompt_tokens):
        cost = params.n * (length + params.max_new_tokens)
        if i > start and (i - start >= max_questions or used + cost > max_tokens):
            chunks.append(range(start, i))
            start, used = i, 0
        used += cost
    if len(prompt_tokens) > start:
        chunks.append(range(start, len(prompt_tokens)))
    return chunks


def chunk_seed(seed: int, first_question_id: str) -> int:
    """A chunk's seed depends on the run seed and the chunk, not on what ran before (resume = no resume)."""
    digest = hashlib.sha256(f"{seed}:{first_question_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@dataclass
class SamplingStats:
    """What sampling cost: filled in by ``sample_all`` (zeros when everything came from the store)."""

    start_seconds: float = 0.0  # model load / engine start
    sampling_seconds: float = 0.0
    generated_tokens: int = 0  # greedy: once per question, not the n copies
    prompt_tokens: int = 0
    chunks: int = 0
    peak_rss_gb: float = 0.0  # this process
    engine_rss_gb: float = 0.0  # child processes (vLLM's engine) at the end of sampling

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.sampling_seconds if self.sampling_seconds > 0 else 0.0

    def line(self) -> str:
        memory = f"peak RSS {self.peak_rss_gb:.2f} GB" + (
            f" + engine {self.engine_rss_gb:.2f} GB" if self.engine_rss_gb else "")
        return (f"model/engine start {self.start_seconds:.1f} s; {self.generated_tokens} tokens generated in"
                f" {self.sampling_seconds:.1f} s ({self.tokens_per_second:.1f} tokens/s) over {self.chunks} chunk(s);"
                f" {memory}")


@dataclass(frozen=True)
class Measurement:
    grades: list[QuestionGrade]
    completions: list[list[Completion]]
    summary: Summary
    stats: SamplingStats = field(default_factory=SamplingStats)


def sample_all(
    questions: Sequence[Question],
    sampler_factory: Callable[[], Sampler],
    params: SamplingParams,
    *,
    chat_template: bool,
    store: SampleStore | None = None,
    chunk: int | None = None,
    chunk_tokens: int | None = None,
    progress: bool = True,
    desc: str = "sampling",
    stats: SamplingStats | None = None,
) -> list[list[Completion]]:
    """Completions for every question, reusing finished ones from ``store``.

    Questions go to the sampler in chunks (``plan_chunks``: at most ``chunk`` questions,
    default ``chunk_size_for(n)``, and ``chunk_tokens`` tokens, default
    ``default_chunk_tokens()``); each finished chunk is stored before the next starts.
    The sampler is built only if something is left to sample, so re-running a
    finished run never loads the model.
    """
    stats = stats if stats is not None else SamplingStats()
    done = store.done() if store is not None else {}
    results: dict[str, list[Completion]] = {q.id: done[q.id] for q in questions if q.id in done}
    if len(results) == len(questions):
        return [results[q.id] for q in questions]
    started = time.perf_counter()
    sampler = sampler_factory()
    stats.start_seconds += getattr(sampler, "start_seconds", time.perf_counter() - started)
    # after the model is up: a bar at 0/N during a minute of engine start looks like a hang
    bar = tqdm(total=len(questions), initial=len(results), desc=desc, unit="q", disable=not progress, leave=False)
    try:
        prompts = [prompt_for(sampler, q.prompt, chat_template) for q in questions]
        lengths = [len(ids) for ids in _encode(sampler, prompts)]  # token counts size the chunks
        chunks = plan_chunks(lengths, params, chunk or chunk_size_for(params.n), chunk_tokens or default_chunk_tokens())
        pending = [c for c in chunks if any(questions[i].id not in results for i in c)]
        for span in pending:
            group = [questions[i] for i in span]
            # Samplers seed prompt i of a call from (params.seed + i) (see sampling.prompt_seed), so a
            # chunk cut short by an interruption is finished with the seeds an uninterrupted run used.
            base_seed = chunk_seed(params.seed, group[0].id)
            for offset, todo in _missing_runs(group, results):
                began = time.perf_counter()
                todo_prompts = [prompts[span.start + offset + k] for k in range(len(todo))]
                try:
                    outs = dict(enumerate(sampler.sample(todo_prompts, replace(params, seed=base_seed + offset))))
                except PartialSample as partial:  # a server failed for good: keep what did finish, then fail
                    _keep(todo, todo_prompts, partial.finished, store, results)
                    raise partial.cause from None
                stats.sampling_seconds += time.perf_counter() - began
                stats.chunks += 1
                _keep(todo, todo_prompts, outs, store, results)
                for k, q in enumerate(todo):
                    stats.prompt_tokens += lengths[span.start + offset + k]
                    stats.generated_tokens += sum(c.num_tokens for c in (outs[k][:1] if params.greedy else outs[k]))
                bar.update(len(todo))
        stats.engine_rss_gb = max(stats.engine_rss_gb, _children_rss_gb())
    finally:
        bar.refresh()  # show the final count even when sampling finished within tqdm's refresh interval
        bar.close()
        sampler.close()
    stats.peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return [results[q.id] for q in questions]


def _encode(sampler: Sampler, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of the prompts, for sizing chunks: the sampler's own rule, else its tokenizer's, else
    about one id per 4 characters (a sampler of another library may implement only ``sample``)."""
    if hasattr(sampler, "encode"):
        return sampler.encode(prompts)
    tokenizer = getattr(sampler, "tokenizer", None)
    if callable(tokenizer):  # a transformers tokenizer
        return [tokenizer(p)["input_ids"] for p in prompts]
    return [[0] * max(1, len(p) // 4) for p in prompts]


def _keep(todo: Sequence[Question], prompts: Sequence[str], outs: dict[int, list[Completion]],
          store: SampleStore | None, results: dict) -> None:
    for i, q in enumerate(todo):
        if i in outs:
            if store is not None:
                store.append(q.id, outs[i], prompt=prompts[i])  # the exact text the model saw
            results[q.id] = outs[i]


def _children_rss_gb() -> float:
    """Resident memory of this process's children now (vLLM's engine runs in them); 0 if unknown."""
    try:
        import psutil  # a dependency of accelerate (and of vLLM)

        return sum(c.memory_info().rss for c in psutil.Process().children(recursive=True)) / 2**30
    except Exception:  # a child that exited meanwhile, or no psutil: memory is a report, not a result
        return 0.0


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
    chunk_tokens: int | None = None,
    progress: bool = True,
    desc: str = "sampling",
) -> Measurement:
    stats = SamplingStats()
    completions = sample_all(
        questions, sampler_factory, params, chat_template=chat_template, store=store, chunk_tokens=chunk_tokens,
        progress=progress, desc=desc, stats=stats,
    )
    graded = [cut_at_stops(comps, q.meta.get("until") or ()) for q, comps in zip(questions, completions)]
    grades = grader.grade_many(list(zip(questions, graded)), answer_type)
    return Measurement(grades=grades, completions=completions, summary=summarize(grades, completions), stats=stats)


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
