"""The Grader: completions -> answers, equivalence classes and their correctness, safely and fast.

``math``: math-verify is the oracle. Each question goes to a worker process as
one request: its distinct completion texts (byte-identical ones merged) and its
reference. The worker reads every text with math-verify's own extraction, once,
places the texts into classes in order of first appearance (a text joins the
first class whose founder it equals, ``verify(founder, text)``, gold first) and
compares each class founder with the reference (``verify(reference, founder)``).
Nothing else is decided without math-verify (see worker.py for its one
shortcut). ``equivalent(gold, pred)`` is exactly ``verify(parse(gold),
parse(pred))`` on the two texts as given.

``integer`` and ``choice``: exact rules in this process (canonical.py); an
integer question with a non-numeric answer goes to a worker like a math one.

Time is bounded per question: every math-verify operation by ``timeout_seconds``,
a question by ``budget_seconds`` (operations left when it is spent count as not
equal, and are counted in ``QuestionGrade.skipped``; so are the further
comparisons of an answer whose comparison timed out in that question). A text whose parse
timed out is remembered for the Grader's lifetime and never parsed again; a
comparison that timed out is not remembered beyond its question.
"""
from __future__ import annotations

import hashlib
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Sequence

from ttrl_bench.errors import UsageError
from ttrl_bench.grading.canonical import boxed, canonical_form, is_plain_number, reference_text
from ttrl_bench.grading.extract import check_answer_type, extract_answer
from ttrl_bench.grading.pool import PoolCounts, VerifyPool
from ttrl_bench.types import CHOICE_LETTERS, AnswerType, Completion, Question, QuestionGrade

# The worker's own timer fires at the operation's limit; the parent kills it this much later.
HARD_DEADLINE_GRACE_SECONDS = 1.0
DEFAULT_BUDGET_SECONDS = 30.0
_UNPARSEABLE_MEMORY = 100_000  # texts whose parse timed out, remembered by digest


@dataclass(frozen=True)
class GraderStats:
    math_verify_calls: int  # parses + verifies (timed-out ones included)
    parses: int  # distinct answers parsed by math-verify (per question)
    verifies: int  # verify() calls
    timeouts: int  # operations (parses or comparisons) that hit the time limit
    skipped: int  # operations not run: their question's budget was spent, or an answer had timed out in it
    worker_kills: int  # workers killed at a hard deadline (stuck where no signal reaches)
    worker_starts: int
    known_unparseable: int  # texts not parsed because their parse had timed out before
    decided_without_math_verify: int  # integer/choice questions decided by exact rules
    slowest_question_seconds: float  # worker time of the slowest question so far


@dataclass(frozen=True)
class GroupJudgement:
    """One group of texts judged together (``Grader.judge``)."""

    answers: list[str | None]
    classes: list[int]  # -1: no answer
    class_correct: list[bool] | None  # None without a reference
    timeouts: int = 0
    skipped: int = 0


class Grader:
    """Grades answers; use as a context manager (or call ``close()``) to stop its workers."""

    def __init__(self, timeout_seconds: float = 5.0, workers: int | None = None,
                 budget_seconds: float | None = DEFAULT_BUDGET_SECONDS):
        if not timeout_seconds > 0:
            raise UsageError(f"timeout_seconds is {timeout_seconds!r}, expected a positive number of seconds")
        if workers is not None and workers < 1:
            raise UsageError(f"workers is {workers!r}, expected a positive integer (or None for one per core)")
        if budget_seconds is not None and not budget_seconds > 0:
            raise UsageError(f"budget_seconds is {budget_seconds!r}, expected a positive number of seconds")
        self.timeout_seconds = float(timeout_seconds)
        self.budget_seconds = float(budget_seconds) if budget_seconds is not None else None
        self.workers = workers or _usable_cores()
        self._lock = threading.RLock()
        self._pool: VerifyPool | None = None
        self._pool_counts = PoolCounts()
        self._unparseable: dict[bytes, None] = {}  # insertion-ordered set of text digests
        self._counts = dict.fromkeys(
            ["parses", "verifies", "timeouts", "skipped", "known_unparseable", "decided"], 0)
        self._slowest = 0.0

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def start(self) -> None:
        """Start the math-verify workers now and wait until they are ready (else: at first need)."""
        with self._lock:
            self._get_pool().start()

    @property
    def stats(self) -> GraderStats:
        c = self._counts
        return GraderStats(
            math_verify_calls=c["parses"] + c["verifies"], parses=c["parses"], verifies=c["verifies"],
            timeouts=c["timeouts"], skipped=c["skipped"], worker_kills=self._pool_counts.kills,
            worker_starts=self._pool_counts.starts, known_unparseable=c["known_unparseable"],
            decided_without_math_verify=c["decided"], slowest_question_seconds=self._slowest,
        )

    def equivalent(self, gold: str, pred: str, answer_type: AnswerType) -> bool | None:
        """Is ``pred`` equivalent to ``gold``? None: a timeout or the budget left it undecided.

        ``math``: math-verify's ``verify(parse(gold), parse(pred))`` on the texts as given.
        """
        return self.equivalent_many([(gold, pred)], answer_type)[0]

    def equivalent_many(self, pairs: Sequence[tuple[str, str]], answer_type: AnswerType) -> list[bool | None]:
        """``equivalent`` for many (gold, pred) pairs, their math-verify work spread over the workers."""
        check_answer_type(answer_type)
        keyed = [(g if answer_type == "math" else canonical_form(g, answer_type), p) for g, p in pairs]
        groups = [([p], g) for g, p in keyed]
        judged = self._judge_many(groups, answer_type, strings_are_answers=answer_type == "math") if groups else []
        return [
            None if j.timeouts or j.skipped else bool(gold) and j.classes[0] >= 0 and bool(j.class_correct[0])
            for (gold, _), j in zip(keyed, judged)
        ]

    def classify(self, answers: Sequence[str | None], answer_type: AnswerType) -> tuple[list[int], list[str]]:
        """Classes of ``answers`` (texts, for ``math``) without a reference (-1: no answer), and each class's first answer."""
        check_answer_type(answer_type)
        judged = self._judge_many([(list(answers), None)], answer_type)[0]
        reps: dict[int, str] = {}
        for answer, cls in zip(judged.answers, judged.classes):
            if cls >= 0:
                reps.setdefault(cls, answer)
        return judged.classes, [reps[c] for c in range(len(reps))]

    def judge(self, texts: Sequence[str], answer_type: AnswerType, reference: str | None = None) -> GroupJudgement:
        """A group's completions: answers, classes and (with a reference) each class's correctness, in one round trip."""
        check_answer_type(answer_type)
        extracted = self._extract(texts, answer_type)
        gold = None if reference is None else self._gold(reference, answer_type, "reference")
        return self._judge_many([(extracted, gold)], answer_type)[0]

    def grade(self, question: Question, completions: Sequence[Completion], answer_type: AnswerType) -> QuestionGrade:
        return self.grade_many([(question, completions)], answer_type)[0]

    def grade_many(
        self, items: Sequence[tuple[Question, Sequence[Completion]]], answer_type: AnswerType
    ) -> list[QuestionGrade]:
        """Grade many questions, their math-verify work spread over the workers together."""
        check_answer_type(answer_type)
        groups = []
        for question, completions in items:
            gold = self._gold(question.reference, answer_type, f"question {question.id!r}: field 'reference'")
            groups.append((self._extract([c.text for c in completions], answer_type), gold))
        judged = self._judge_many(groups, answer_type)
        return [
            QuestionGrade(
                question_id=question.id, answers=j.answers, classes=j.classes, class_correct=j.class_correct or [],
                timeouts=j.timeouts, skipped=j.skipped, meta=question.meta,
            )
            for (question, _), j in zip(items, judged)
        ]

    # ---- internals ---------------------------------------------------------------------

    @staticmethod
    def _extract(texts: Sequence[str], answer_type: AnswerType) -> list[str | None]:
        # math: the whole completion is math-verify's to read (in a worker, under its timers)
        return list(texts) if answer_type == "math" else [extract_answer(t, answer_type) for t in texts]

    @staticmethod
    def _gold(reference: str, answer_type: AnswerType, where: str) -> str:
        if not reference.strip():
            raise UsageError(f"{where} is empty, expected the reference answer")
        if answer_type == "math":
            return reference_text(reference)
        key = canonical_form(reference, answer_type)
        if answer_type == "choice" and key not in CHOICE_LETTERS:
            raise UsageError(f"{where} is {reference!r}, expected a choice letter {CHOICE_LETTERS[0]}-{CHOICE_LETTERS[-1]}")
        return key

    def _judge_many(self, groups: list[tuple[list[str | None], str | None]], answer_type: AnswerType,
                    strings_are_answers: bool = False) -> list[GroupJudgement]:
        """Each group: (answers -- whole texts for math --, gold text or canonical key or None)."""
        with self._lock:
            results: list[GroupJudgement | None] = [None] * len(groups)
            pending: dict[int, tuple[list[int], list[str | None], int | None]] = {}
            try:
                for index, (answers, gold) in enumerate(groups):
                    request, sample_text, shown = self._request(answers, gold, answer_type)
                    if request is None:  # decided here (integer/choice exact rules)
                        self._counts["decided"] += 1
                        results[index] = _decide_exactly(shown, sample_text, request_keys(answers, answer_type), gold)
                        continue
                    request["strings_are_answers"] = strings_are_answers
                    pending[index] = (sample_text, shown, request)
                    self._get_pool().submit(index, request)
                if pending:
                    for index, reply in self._get_pool().results():
                        sample_text, shown, request = pending.pop(index)
                        results[index] = self._absorb(reply, request, sample_text, shown, answer_type)
            except BaseException:
                # Interrupted mid-batch (Ctrl-C, a worker that cannot start): the pool's
                # in-flight state is stale, so start afresh on the next call.
                self.close()
                raise
            return results  # type: ignore[return-value]

    def _request(self, answers: list[str | None], gold: str | None, answer_type: AnswerType):
        """(request for a worker or None, per sample the index of its distinct text (-1: none), answers shown)."""
        texts: list[str] = []
        index_of: dict[str, int] = {}
        sample_text: list[int] = []
        keys = request_keys(answers, answer_type)
        for key in keys:
            if key is None:
                sample_text.append(-1)
                continue
            if key not in index_of:
                index_of[key] = len(texts)
                texts.append(key)
            sample_text.append(index_of[key])
        shown = [None if k is None else (k if answer_type != "math" else None) for k in keys]
        if answer_type == "choice" or (
            answer_type == "integer" and all(map(is_plain_number, texts)) and (gold is None or is_plain_number(gold))
        ):
            return None, sample_text, shown
        if answer_type == "integer":  # some answer is no plain number: math-verify reads them boxed
            plain = [is_plain_number(t) for t in texts] + [gold is not None and is_plain_number(gold)]
            texts_for_mv, gold_for_mv = [boxed(t) for t in texts], (None if gold is None else boxed(gold))
        else:
            plain, texts_for_mv, gold_for_mv = None, texts, gold
        known = [i for i, t in enumerate(texts_for_mv) if _digest(t) in self._unparseable]
        if gold_for_mv is not None and _digest(gold_for_mv) in self._unparseable:
            known.append(len(texts_for_mv))
        self._counts["known_unparseable"] += len(known)
        request = {
            "texts": texts_for_mv, "gold": gold_for_mv, "plain": plain, "timeout": self.timeout_seconds,
            "budget": self.budget_seconds, "unparseable": known,
        }
        return request, sample_text, shown

    def _absorb(self, reply: dict, request: dict, sample_text: list[int], shown: list, answer_type: AnswerType) -> GroupJudgement:
        texts = request["texts"]
        timeouts = len(reply["timed_out"])
        for op in reply["timed_out"]:
            if op[0] == "parse":  # remembered: this text is never parsed again
                text = request["gold"] if op[1] == len(texts) else texts[op[1]]
                self._unparseable[_digest(text)] = None
                if len(self._unparseable) > _UNPARSEABLE_MEMORY:
                    self._unparseable.pop(next(iter(self._unparseable)))
        for name in ("parses", "verifies", "skipped"):
            self._counts[name] += reply[name]
        self._counts["timeouts"] += timeouts
        self._slowest = max(self._slowest, reply["busy_seconds"])
        classes = [reply["classes"][t] if t >= 0 else -1 for t in sample_text]
        answers = [reply["answers"][t] if t >= 0 else None for t in sample_text] if answer_type == "math" else shown
        answers = [a if c >= 0 else None for a, c in zip(answers, classes)] if answer_type == "math" else answers
        return GroupJudgement(answers=answers, classes=_renumber(classes), class_correct=_reorder(reply["class_correct"], classes),
                              timeouts=timeouts, skipped=reply["skipped"])

    def _get_pool(self) -> VerifyPool:
        if self._pool is not None and self._pool.owner_pid != os.getpid():
            self._pool = None  # a forked copy of this Grader: the workers are the parent's
        if self._pool is None:
            self._pool = VerifyPool(self.workers, grace_seconds=HARD_DEADLINE_GRACE_SECONDS, counts=self._pool_counts)
            weakref.finalize(self, self._pool.close)  # no orphaned workers if close() is forgotten
        return self._pool


def request_keys(answers: Sequence[str | None], answer_type: AnswerType) -> list[str | None]:
    """Per answer the string that is compared: the text itself for math, else its canonical form."""
    if answer_type == "math":
        return [a if a is not None and a.strip() else None for a in answers]
    return [(canonical_form(a, answer_type) or None) if a is not None else None for a in answers]


def _decide_exactly(shown, sample_text, keys, gold) -> GroupJudgement:
    """Integer (all plain numbers) and choice answers: equal exactly when their canonical strings are."""
    classes = _renumber(sample_text)
    founders: dict[int, str] = {}
    for key, cls in zip(keys, classes):
        if cls >= 0:
            founders.setdefault(cls, key)
    correct = None if gold is None else [founders[c] == gold for c in range(len(founders))]
    return GroupJudgement(answers=shown, classes=classes, class_correct=correct)


def _renumber(classes: list[int]) -> list[int]:
    """Classes numbered in order of first appearance among the samples."""
    order: dict[int, int] = {}
    return [order.setdefault(c, len(order)) if c >= 0 else -1 for c in classes]


def _reorder(correct: list[bool] | None, classes: list[int]) -> list[bool] | None:
    if correct is None:
        return None
    seen = list(dict.fromkeys(c for c in classes if c >= 0))
    return [correct[c] for c in seen]


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: the cores this process may run on
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
