"""Budget-forced measurement: cut the eval samples, force an answer after each prefix, and build
the accuracy-vs-tokens curve, the parallel comparator and the cumulative regret.

Every distinct (question, prefix) is one "unit": its prompt is the question's rendered
prompt + the prefix + the task's forced-answer suffix, and the meta-prover (the same
model or ``--prover``) samples m short answers to it. Units go through the same resumable
loop as ``eval`` (``measure.loop.sample_all`` with a ``SampleStore``), keyed by question id
and a hash of the prefix, so an interrupted budget run resumes where it stopped, and two
cuts with the same prefix (a budget past the end of a short answer) share their answers.
J of a prefix = the share of its forced answers that are correct (``suffix + answer`` is
graded like any completion).
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ttrl_bench.grading import Grader
from ttrl_bench.measure import regret as R
from ttrl_bench.measure.budget_cuts import Cut, budget_cuts, episode_cuts, thinking_part, token_ends
from ttrl_bench.measure.loop import SamplingStats, sample_all
from ttrl_bench.measure.metrics import mean_stderr
from ttrl_bench.measure.store import SampleStore
from ttrl_bench.sampling import Sampler, render_prompt
from ttrl_bench.tasks.registry import BudgetSettings
from ttrl_bench.types import AnswerType, Completion, Question, QuestionGrade, SamplingParams


@dataclass(frozen=True)
class SampleCuts:
    budget: list[Cut]  # one per grid budget (grid[0] = 0)
    episodes: list[Cut]  # after episode 0 (nothing), 1, ..., E


def unit_id(question_id: str, prefix: str) -> str:
    return f"{question_id}#{hashlib.sha256(prefix.encode()).hexdigest()[:16]}"


def cut_samples(tokenizer, completions: Sequence[Completion], settings: BudgetSettings, grid: Sequence[int]) -> list[SampleCuts]:
    marker = settings.marker_regex()
    out = []
    for c in completions:
        thinking = thinking_part(c.text, settings.end_of_thinking)
        ends = token_ends(tokenizer, thinking)
        out.append(SampleCuts(budget_cuts(ends, thinking, list(grid)), episode_cuts(ends, thinking, marker)))
    return out


@dataclass(frozen=True)
class ForcedResult:
    j: dict[str, float]  # unit id -> share of forced answers that are correct
    units: int
    forced_tokens: int
    seconds: float  # wall time spent sampling forced answers (0 when all were stored)
    start_seconds: float = 0.0  # of that, waiting for the prover to load (0 when stored, or already loaded)


def force_answers(
    questions: Sequence[Question], rendered: Sequence[str], cuts: Sequence[Sequence[SampleCuts]], *,
    settings: BudgetSettings, sampler_factory: Callable[[], Sampler], params: SamplingParams,
    answer_type: AnswerType, grader: Grader, store: SampleStore | None, progress: bool = True,
    chunk: int | None = None,
) -> ForcedResult:
    """Sample ``params.n`` forced answers for every distinct prefix and grade them."""
    units: dict[str, Question] = {}
    for q, prompt, per_sample in zip(questions, rendered, cuts):
        for sc in per_sample:
            for cut in [*sc.budget, *sc.episodes]:
                uid = unit_id(q.id, cut.prefix)
                if uid not in units:
                    units[uid] = Question(id=uid, prompt=prompt + settings.forced_text(cut.prefix), reference=q.reference)
    todo = list(units.values())
    start = time.perf_counter()
    stats = SamplingStats()
    answers = sample_all(todo, sampler_factory, params, chat_template=False, store=store, progress=progress,
                         desc="forced answers", chunk=chunk, stats=stats)
    seconds = time.perf_counter() - start
    # grade "suffix + answer", so an answer that closes the suffix's \boxed{ is found
    graded = grader.grade_many(
        [(u, [replace(c, text=settings.forced_suffix + c.text) for c in comps]) for u, comps in zip(todo, answers)],
        answer_type,
    )
    j = {g.question_id: sum(g.correct) / g.n for g in graded}
    tokens = sum(c.num_tokens for comps in answers for c in comps)
    return ForcedResult(j=j, units=len(todo), forced_tokens=tokens, seconds=seconds, start_seconds=stats.start_seconds)


def budget_curves(
    questions: Sequence[Question], grades: Sequence[QuestionGrade], completions: Sequence[Sequence[Completion]],
    cuts: Sequence[Sequence[SampleCuts]], forced: ForcedResult, grid: Sequence[int],
) -> dict:
    """The curves, comparators, regrets and episode progress (see ``measure.regret``), as JSON-ready data."""
    per_q_j, per_q_tokens, per_q_maj, per_q_pass, per_q_k = [], [], [], [], []
    per_q_episode: list[list[float]] = []
    max_episodes = max(len(sc.episodes) for per_sample in cuts for sc in per_sample)
    for q, grade, comps, per_sample in zip(questions, grades, completions, cuts):
        rows = [[forced.j[unit_id(q.id, c.prefix)] for c in sc.budget] for sc in per_sample]
        j = [sum(col) / len(col) for col in zip(*rows)]
        per_q_j.append(j)
        per_q_tokens.append([sum(sc.budget[i].tokens for sc in per_sample) / len(per_sample) for i in range(len(grid))])
        length = sum(c.num_tokens for c in comps) / len(comps)
        maj, ks = R.comparator_curve(grid, j, grade.classes, grade.class_correct, length, "maj")
        pas, _ = R.comparator_curve(grid, j, grade.classes, grade.class_correct, length, "pass")
        per_q_maj.append(maj)
        per_q_pass.append(pas)
        per_q_k.append(ks)
        # episode curve, carried forward past a sample's last episode
        ep_rows = [[forced.j[unit_id(q.id, sc.episodes[min(k, len(sc.episodes) - 1)].prefix)] for k in range(max_episodes)]
                   for sc in per_sample]
        per_q_episode.append([sum(col) / len(col) for col in zip(*ep_rows)])

    regret_maj = [R.cumulative_regret(grid, c, j) for c, j in zip(per_q_maj, per_q_j)]
    regret_pass = [R.cumulative_regret(grid, c, j) for c, j in zip(per_q_pass, per_q_j)]
    regret_oracle = [R.cumulative_regret(grid, [1.0] * len(grid), j) for j in per_q_j]

    def curve(rows):
        return [{"mean": m, "stderr": s} for m, s in R.mean_curve(rows)]

    def tokens_to_90(rows):
        return R.tokens_to_fraction(grid, [m for m, _ in R.mean_curve(rows)], 0.9)

    progress = [[row[k] - row[k - 1] for k in range(1, max_episodes)] for row in per_q_episode]
    return {
        "grid": list(grid),
        "num_questions": len(questions),
        "samples_per_question": len(cuts[0]),
        "accuracy": curve(per_q_j),
        "tokens_used": [m for m, _ in R.mean_curve(per_q_tokens)],
        "parallel_k": [m for m, _ in R.mean_curve(per_q_k)],
        "parallel_maj": curve(per_q_maj),
        "parallel_pass": curve(per_q_pass),
        "regret": curve(regret_maj),  # vs the parallel maj@k comparator, one value per grid budget after 0
        "regret_pass": curve(regret_pass),
        "regret_oracle": curve(regret_oracle),
        "tokens_to_90": {"mean": tokens_to_90(per_q_j), "stderr": R.bootstrap_stderr(per_q_j, tokens_to_90)},
        "episodes": {
            "accuracy": curve(per_q_episode),
            "progress": curve(progress) if progress and progress[0] else [],
            "mean_episodes": sum(len(sc.episodes) - 1 for ps in cuts for sc in ps) / sum(len(ps) for ps in cuts),
        },
        "per_question": {
            "ids": [q.id for q in questions],
            "accuracy_final": [row[-1] for row in per_q_j],
            "regret": [row[-1] for row in regret_maj],
            "regret_oracle": [row[-1] for row in regret_oracle],
        },
        "cost": {"forced_prompts": forced.units, "forced_tokens": forced.forced_tokens, "forced_seconds": forced.seconds,
                 "forced_start_seconds": forced.start_seconds},
    }


def budget_metrics(curves: dict) -> dict[str, dict[str, float]]:
    """The record metrics: J, regret (parallel maj@k and oracle) at the largest budget, and tokens to 90%."""
    return {
        "budget-acc": curves["accuracy"][-1],
        "regret": curves["regret"][-1],
        "oracle-regret": curves["regret_oracle"][-1],
        "tokens-to-90": curves["tokens_to_90"],
    }


def unwritable(tokenizer, texts: Sequence[str]) -> str | None:
    """The first character of ``texts`` that ``tokenizer`` encodes as its unknown token (None: it writes them all).

    The prefixes are text cut with the measured model's tokenizer; a prover with another tokenizer
    re-tokenises them, which is exact unless its vocabulary lacks a character (a byte-fallback
    tokenizer never does; a small word- or character-level one may)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return None
    for text in texts:
        if text and unk in tokenizer(text, add_special_tokens=False)["input_ids"]:
            for ch in dict.fromkeys(text):
                if unk in tokenizer(ch, add_special_tokens=False)["input_ids"]:
                    return ch
            return text  # unknown only in context (e.g. a word-level vocabulary): name the whole text
    return None


def render_all(tokenizer, questions: Sequence[Question], chat_template: bool) -> list[str]:
    return [render_prompt(tokenizer, q.prompt, chat_template) for q in questions]


def mean_of(values: Sequence[float]) -> dict[str, float]:
    m, s = mean_stderr(values)
    return {"mean": m, "stderr": s}
