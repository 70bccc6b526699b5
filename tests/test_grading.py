"""The Grader end to end: grades, batching, timeouts, worker recovery, threads, bad input."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from ttrl_bench.errors import UsageError
from ttrl_bench.grading import Grader
from ttrl_bench.grading.grader import HARD_DEADLINE_GRACE_SECONDS
from ttrl_bench.grading.pool import VerifyPool
from ttrl_bench.types import Completion, Question

# math-verify parses this tower of powers, and its verify() runs for ever (evaluating it).
TOWER = "\\boxed{9^{9^{9^{9^{9}}}}}"
SHORT_TIMEOUT = 1.0


def _slow_to_parse(tag: int) -> str:
    """An answer math-verify needs far longer than SHORT_TIMEOUT to parse on any machine: a 3000-term
    polynomial (about 40 s on an idle 2-core machine). A 100,000-digit number parses in under a second
    when the machine is idle, so it only timed out under load."""
    return "\\boxed{" + "+".join(f"x_{{{tag}}}^{{{i}}}" for i in range(3000)) + "}"


def _completions(*texts: str) -> list[Completion]:
    return [Completion(text=t, num_tokens=len(t.split()), finish_reason="stop") for t in texts]


@pytest.fixture(scope="module")
def grader():
    with Grader(timeout_seconds=30.0) as g:  # verdict tests: generous on a loaded machine
        yield g


def test_grade_fills_answers_classes_correctness_and_meta(grader):
    question = Question(id="q1", prompt="?", reference="\\frac{1}{2}", meta={"level": 3})
    completions = _completions(
        "First I thought 3. In the end, \\boxed{0.5}",
        "The answer is 3.",
        "I give up.",
        "\\boxed{\\dfrac{1}{2}}",
        "so \\boxed{1/2",  # cut off: no answer
        "so \\boxed{1/2}",
    )
    grade = grader.grade(question, completions, "math")
    assert grade.question_id == "q1"
    # answers are the spans math-verify read, as written
    assert grade.answers == ["\\boxed{0.5}", "3", None, "\\boxed{\\dfrac{1}{2}}", None, "\\boxed{1/2}"]
    assert grade.classes == [0, 1, -1, 0, -1, 0]
    assert grade.class_correct == [True, False]
    assert grade.correct == [True, False, False, True, False, True]
    assert grade.timeouts == 0 and grade.skipped == 0
    assert grade.meta == {"level": 3}


def test_grade_many_matches_grading_one_question_at_a_time(grader):
    items = [
        (Question(id=f"q{i}", prompt="", reference=ref), _completions(*texts))
        for i, (ref, texts) in enumerate(
            [
                ("\\frac{2}{5}", ["\\boxed{0.4}", "\\boxed{2/5}", "\\boxed{0.5}", "\\boxed{\\frac{4}{10}}"]),
                ("7", ["\\boxed{7}", "\\boxed{7.0}", "\\boxed{8}", "nothing"]),
                ("\\sqrt{3}", ["\\boxed{3^{1/2}}", "\\boxed{\\sqrt3}", "\\boxed{1.732}", "\\boxed{3}"]),
            ]
        )
    ]
    together = grader.grade_many(items, "math")
    assert [g.question_id for g in together] == ["q0", "q1", "q2"]
    assert together == [grader.grade(q, c, "math") for q, c in items]
    assert together[0].classes == [0, 0, 1, 0] and together[0].class_correct == [True, False]


def test_integer_grading_of_digit_completions(grader):
    question = Question(id="add", prompt="123+456=", reference="579")
    # "5,79" is no thousands group: its last number is 79.
    grade = grader.grade(question, _completions("579", "578", "", "5,79", "579"), "integer")
    assert grade.answers == ["579", "578", None, "79", "579"]
    assert grade.classes == [0, 1, -1, 2, 0]
    assert grade.class_correct == [True, False, False]


def test_choice_grading(grader):
    question = Question(id="gpqa", prompt="?", reference="(C)")
    # Outside a box only capitals count as letters ("a" is usually an article).
    texts = ("\\boxed{c}", "Answer: A", "the answer is a guess", "so (C) it is")
    grade = grader.grade(question, _completions(*texts), "choice")
    assert grade.answers == ["C", "A", None, "C"]
    assert grade.classes == [0, 1, -1, 0]
    assert grade.correct == [True, False, False, True]


def test_a_hanging_comparison_is_killed_counted_once_and_the_grader_keeps_working():
    with Grader(timeout_seconds=SHORT_TIMEOUT, workers=1) as grader:
        grader.start()
        started = time.monotonic()
        assert grader.equivalent("2", TOWER, "math") is None
        assert time.monotonic() - started < SHORT_TIMEOUT + HARD_DEADLINE_GRACE_SECONDS + 1.0
        assert grader.stats.timeouts == 1

        question = Question(id="q", prompt="", reference="2")
        texts = ("\\boxed{2}", "\\boxed{3}", TOWER, "\\boxed{2.0}", "\\boxed{4}")
        grade = grader.grade(question, _completions(*texts), "math")
        # the tower is compared once (with the first class), times out, founds its own class and
        # is never compared again in this question: one timeout, the other comparisons skipped
        assert grade.classes == [0, 1, 2, 0, 3]
        assert grade.class_correct == [True, False, False, False]
        assert grade.timeouts == 1 and grade.skipped >= 1
        assert grader.equivalent("\\frac{3}{4}", "0.75", "math") is True


def test_one_pathological_answer_among_16_costs_one_timeout_and_is_remembered():
    budget = 4.0
    slow = _slow_to_parse(7)  # its parse runs past any timeout here
    texts = [f"so \\boxed{{{k % 5}}}" for k in range(15)] + [slow]
    with Grader(timeout_seconds=SHORT_TIMEOUT, workers=1, budget_seconds=budget) as grader:
        grader.start()
        grade = grader.grade(Question(id="p", prompt="", reference="3"), _completions(*texts), "math")
        assert grade.timeouts == 1 and grade.skipped == 0
        assert grade.classes == [0, 1, 2, 3, 4] * 3 + [-1]  # a parse that timed out is no answer
        assert grade.class_correct == [False, False, False, True, False]
        assert grader.stats.slowest_question_seconds < budget + SHORT_TIMEOUT
        # the same text in another question is not parsed again: no second timeout
        again = grader.grade(Question(id="p2", prompt="", reference="7"), _completions(slow, "\\boxed{7}"), "math")
        assert again.timeouts == 0 and again.classes == [-1, 0] and again.class_correct == [True]
        assert grader.stats.timeouts == 1 and grader.stats.known_unparseable == 1


def test_a_spent_budget_ends_the_question_and_the_rest_is_counted_not_equal():
    budget = 2.5
    slow = [_slow_to_parse(d) for d in range(1, 8)]  # each parse takes far more than 1 s
    with Grader(timeout_seconds=SHORT_TIMEOUT, workers=1, budget_seconds=budget) as grader:
        grader.start()
        started = time.monotonic()
        grade = grader.grade(Question(id="b", prompt="", reference="5"), _completions(*slow, "\\boxed{5}"), "math")
        elapsed = time.monotonic() - started
    assert grade.timeouts >= 2 and grade.skipped >= 1
    assert grade.timeouts + grade.skipped >= len(slow)  # every slow text either timed out or was skipped
    assert elapsed < budget + SHORT_TIMEOUT + HARD_DEADLINE_GRACE_SECONDS + 2.0
    assert grade.correct[-1] is False  # the budget ran out before "5" could be compared: counted, not equal


def test_a_worker_that_stops_answering_is_killed_and_the_question_resent():
    # A stopped process answers nothing, as one stuck in C code where no signal reaches.
    pool = VerifyPool(1, grace_seconds=0.5)
    try:
        pool.start()
        os.kill(pool._workers[0].process.pid, signal.SIGSTOP)
        pool.submit("q", {"texts": ["0.5"], "gold": "$\\frac{1}{2}$", "timeout": 1.0, "budget": 10.0})
        (token, reply), = list(pool.results())
        assert token == "q" and reply["classes"] == [0] and reply["class_correct"] == [True]
        assert reply["kills"] == 1 and pool.counts.kills == 1 and pool.counts.starts == 2
    finally:
        pool.close()


def test_grading_from_a_non_main_thread(grader):
    outcome = {}

    def work():
        try:
            outcome["classes"] = grader.classify(["\\frac{1}{4}", "0.25", "4"], "math")[0]
            outcome["equal"] = grader.equivalent("$\\frac{\\sqrt{2}}{2}$", "$\\frac{1}{\\sqrt{2}}$", "math")
        except BaseException as exc:  # surfaced below: the thread must not die silently
            outcome["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=60)
    assert "error" not in outcome
    assert outcome == {"classes": [0, 0, 1], "equal": True}


def test_a_forked_copy_never_stops_the_parents_workers():
    with Grader(workers=1) as grader:
        grader.start()
        pid = os.fork()
        if pid == 0:  # the child: closing (as its exit handlers would) must leave the workers alone
            grader.close()
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
        assert grader.equivalent("\\frac{1}{8}", "0.125", "math") is True
        assert grader.stats.worker_starts == 1 and grader.stats.worker_kills == 0


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Grader(timeout_seconds=0), "timeout_seconds"),
        (lambda: Grader(workers=0), "workers"),
        (lambda: Grader().classify(["1"], "numeric"), "answer_type 'numeric'"),
        (lambda: Grader().grade(Question("q7", "", "K"), [], "choice"), "question 'q7': field 'reference'"),
        (lambda: Grader(budget_seconds=0), "budget_seconds"),
        (lambda: Grader().grade(Question("q8", "", "  "), [], "math"), "question 'q8': field 'reference' is empty"),
    ],
)
def test_bad_input_is_a_usage_error_naming_the_field(make, message):
    with pytest.raises(UsageError, match=message):
        make()
