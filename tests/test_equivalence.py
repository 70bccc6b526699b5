"""Equivalence: math verdicts are math-verify's own; integer/choice keep exact rules without false merges."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ttrl_bench.grading import Grader
from ttrl_bench.grading.canonical import canonical_form, reference_text
from ttrl_bench.types import CHOICE_LETTERS

CASES = json.loads((Path(__file__).parent / "cases" / "equivalence_cases.json").read_text())


@pytest.fixture(scope="module")
def grader():
    with Grader(timeout_seconds=30.0) as g:  # verdict tests: generous on a loaded machine
        yield g


def test_math_cases_expect_what_math_verify_itself_says():
    """The case table encodes math-verify's verdicts, not an opinion of ours."""
    from math_verify import parse, verify

    for case in (c for c in CASES if c["type"] == "math"):
        oracle = verify(parse(case["gold"], parsing_timeout=None), parse(case["pred"], parsing_timeout=None),
                        timeout_seconds=None)
        assert oracle is case["equal"], case["id"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_equivalence_case_table(grader, case):
    assert grader.equivalent(case["gold"], case["pred"], case["type"]) is case["equal"]


@pytest.mark.parametrize(
    "answer, canonical",
    [
        ("1,000", "1000"), ("$1,000$", "1000"), ("12,345.50", "12345.5"), ("007", "7"), ("18.", "18"),
        ("1,2", "1,2"), ("1, 2", "1, 2"), ("1 2", "1 2"), ("32, 349", "32, 349"), ("1,0000", "1,0000"),
    ],
)
def test_integer_canonical_form_drops_only_valid_thousands_separators(answer, canonical):
    assert canonical_form(answer, "integer") == canonical


def test_choice_letters_are_one_constant_everywhere():
    assert [canonical_form(f"({letter.lower()})", "choice") for letter in CHOICE_LETTERS] == list(CHOICE_LETTERS)
    from ttrl_bench.tasks import registry

    assert registry.CHOICE_LETTERS is CHOICE_LETTERS


@pytest.mark.parametrize(
    "reference, text",
    [
        ("2\\pi", "$2\\pi$"), ("(1,2)", "$(1,2)$"), ("\\frac{14}{3}", "$\\frac{14}{3}$"),
        ("1,000", "1,000"), ("28%", "28%"), ("-3.5", "-3.5"), ("$x=1$", "$x=1$"), ("so \\boxed{4}", "so \\boxed{4}"),
    ],
)
def test_a_bare_reference_is_handed_to_math_verify_in_dollars(reference, text):
    assert reference_text(reference) == text


def test_math_classes_follow_math_verify_and_unreadable_texts_are_no_answer(grader):
    texts = ["0.5", "2", "$\\frac{1}{2}$", None, "1/2", "so \\boxed{3", "\\boxed{3}", "$0.5$"]
    classes, representatives = grader.classify(texts, "math")
    assert classes == [0, 1, 0, -1, 0, -1, 2, 0]  # an unclosed box is no answer
    assert representatives == ["0.5", "2", "\\boxed{3}"]


def test_identical_texts_are_read_once(grader):
    before = grader.stats.parses
    classes, _ = grader.classify(["The answer is $\\frac{2}{3}$."] * 32, "math")
    assert classes == [0] * 32
    assert grader.stats.parses - before <= 2  # one text, at most two regex candidates parsed


def test_integer_classes_are_numeric_and_need_no_worker():
    with Grader() as fresh:
        classes, representatives = fresh.classify(["1,000", "1000", "999", None, "1000.0", "579"], "integer")
        assert classes == [0, 0, 1, -1, 0, 2]
        assert representatives == ["1000", "999", "579"]
        assert fresh.stats.worker_starts == 0


def test_three_wrong_list_answers_cannot_win_an_integer_vote_as_correct(grader):
    from ttrl_bench.types import Completion, Question

    texts = ["\\boxed{1,2}", "\\boxed{1, 2}", "\\boxed{1 2}", "\\boxed{12}", "\\boxed{1,2}"]
    grade = grader.grade(Question("q", "", "12"), [Completion(t, 1, "stop") for t in texts], "integer")
    assert grade.correct == [False, False, False, True, False]
