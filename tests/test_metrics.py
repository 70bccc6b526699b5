"""Metrics: pass@k, majority vote, stderr and the summary, against hand-computed case tables."""
from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttrl_bench.measure.metrics import default_ks, majority_vote, mean_stderr, pass_at_k, question_scores, summarize
from ttrl_bench.types import Completion, QuestionGrade

CASES = json.loads((Path(__file__).parent / "cases" / "metrics_cases.json").read_text())


def _grade(spec: dict) -> QuestionGrade:
    classes = spec["classes"]
    return QuestionGrade(
        question_id=spec["question_id"],
        answers=[None if c < 0 else f"answer {c}" for c in classes],
        classes=classes,
        class_correct=spec["class_correct"],
        timeouts=spec.get("timeouts", 0),
        meta=spec.get("meta", {}),
    )


def _completions(spec: list | None) -> list[list[Completion]] | None:
    if spec is None:
        return None
    return [[Completion(text="...", num_tokens=t, finish_reason=r) for t, r in group] for group in spec]


def assert_matches(actual, expected, path="summary"):
    """Deep comparison; an expected string stands for an exact fraction where the actual value is a number."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert list(actual) == list(expected), f"{path}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert_matches(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_matches(a, e, f"{path}[{i}]")
    elif expected is None or isinstance(expected, bool):
        assert actual is expected, f"{path}: {actual!r} is not {expected!r}"
    elif isinstance(expected, str) and isinstance(actual, str):
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"
    else:
        assert isinstance(actual, (int, float)) and not isinstance(actual, bool), f"{path}: {actual!r} is not a number"
        assert actual == pytest.approx(float(Fraction(expected)), rel=1e-12, abs=1e-15), f"{path}: {actual} != {expected}"


# --- pass@k ------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES["pass_at_k"], ids=lambda c: f"n{c['n']}c{c['c']}k{c['k']}")
def test_pass_at_k_hand_cases(case):
    assert pass_at_k(case["n"], case["c"], case["k"]) == pytest.approx(float(Fraction(case["expected"])), rel=1e-12)


@pytest.mark.parametrize("case", CASES["pass_at_k_invalid"], ids=lambda c: c["why"])
def test_pass_at_k_rejects_invalid(case):
    with pytest.raises(ValueError):
        pass_at_k(case["n"], case["c"], case["k"])


@st.composite
def n_c_k(draw, max_n=200):
    n = draw(st.integers(1, max_n))
    return n, draw(st.integers(0, n)), draw(st.integers(1, n))


@given(n_c_k())
def test_pass_at_k_equals_combinatorial_count(nck):
    n, c, k = nck
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))  # comb(m, k) = 0 when m < k
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-9, abs=1e-12)


@given(n_c_k())
def test_pass_at_1_is_exactly_the_share_correct(nck):
    n, c, _ = nck
    assert pass_at_k(n, c, 1) == c / n


@given(n_c_k(max_n=64))
def test_pass_at_k_grows_with_k(nck):
    n, c, k = nck
    if k < n:
        assert pass_at_k(n, c, k + 1) >= pass_at_k(n, c, k)


def test_pass_at_k_stays_finite_where_binomials_overflow_floats():
    # C(5000, 2500) is far beyond float range; with one correct sample pass@k = k / n exactly.
    assert pass_at_k(5000, 1, 2500) == pytest.approx(0.5, rel=1e-9)
    assert pass_at_k(5000, 100, 2500) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    "n, expected", [(1, [1]), (2, [1, 2]), (3, [1, 2, 3]), (12, [1, 2, 4, 8, 12]), (16, [1, 2, 4, 8, 16]), (64, [1, 2, 4, 8, 16, 32, 64])]
)
def test_default_ks(n, expected):
    assert default_ks(n) == expected


def test_default_ks_rejects_no_samples():
    with pytest.raises(ValueError):
        default_ks(0)


# --- majority vote -----------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES["majority_vote"], ids=lambda c: c["name"])
def test_majority_vote_cases(case):
    vote = majority_vote(case["classes"], case["class_correct"])
    assert_matches(asdict(vote), case["expected"], "vote")


@given(st.lists(st.integers(-1, 4), max_size=20))
def test_majority_vote_counts_are_consistent(classes):
    vote = majority_vote(classes)
    answered = [c for c in classes if c >= 0]
    assert vote.voters == len(answered)
    assert vote.votes == (answered.count(vote.cls) if answered else 0)
    assert all(answered.count(c) <= vote.votes for c in answered)
    assert vote.tie == (sum(answered.count(c) == vote.votes for c in set(answered)) > 1)


@pytest.mark.parametrize("classes, class_correct", [([0, -2], [True]), ([0, 1], [True])])
def test_majority_vote_rejects_bad_classes(classes, class_correct):
    with pytest.raises(ValueError):
        majority_vote(classes, class_correct)


# --- stderr ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "values, mean, stderr",
    [([0.0, 1.0], 0.5, 0.5), ([1.0, 1.0, 1.0], 1.0, 0.0), ([0.25], 0.25, 0.0), ([1.0, 0.0, 0.0], 1 / 3, 1 / 3)],
)
def test_mean_stderr(values, mean, stderr):
    assert mean_stderr(values) == pytest.approx((mean, stderr), rel=1e-12)


def test_mean_stderr_rejects_empty():
    with pytest.raises(ValueError):
        mean_stderr([])


# --- summary -----------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES["summarize"], ids=lambda c: c["name"])
def test_summarize_cases(case):
    grades = [_grade(g) for g in case["grades"]]
    summary = summarize(grades, _completions(case["completions"]), case["ks"]).to_dict()
    assert_matches(summary, case["expected"])
    assert json.loads(json.dumps(summary)) == summary  # JSON-able as is


@pytest.mark.parametrize("case", CASES["summarize"], ids=lambda c: c["name"])
def test_question_scores_cases(case):
    scores = question_scores([_grade(g) for g in case["grades"]])
    assert_matches([asdict(s) for s in scores], case["expected_question_scores"], "question_scores")


def test_summarize_does_not_mutate_inputs():
    grades = [_grade(g) for g in CASES["summarize"][0]["grades"]]
    completions = _completions(CASES["summarize"][0]["completions"])
    before = copy.deepcopy((grades, completions))
    summarize(grades, completions)
    assert (grades, completions) == before


def test_truncation_rate_counts_length_finishes_only():
    grade = QuestionGrade("q", ["1", "1", "1", "1"], [0, 0, 0, 0], [True])
    finishes = [Completion("", 8, "length"), Completion("", 3, "stop"), Completion("", 8, "length"), Completion("", 8, "length")]
    lengths = vars(summarize([grade], [finishes]).lengths)
    assert lengths == {"mean_tokens": 27 / 4, "truncation_rate": 3 / 4}


def test_by_level_is_absent_without_levels():
    grade = QuestionGrade("q", ["1", "2"], [0, 1], [True, False])
    assert "by_level" not in summarize([grade]).to_dict()


def test_by_level_sorts_numeric_levels_numerically():
    grades = [QuestionGrade(f"q{lv}", ["1"], [0], [True], meta={"level": lv}) for lv in (10, 2, 1)]
    assert list(summarize(grades).by_level) == ["1", "2", "10"]


def test_summarize_rejects_unequal_sample_counts():
    grades = [QuestionGrade("a", ["1"], [0], [True]), QuestionGrade("b", ["1", "1"], [0, 0], [True])]
    with pytest.raises(ValueError, match="same number of samples"):
        summarize(grades)


@pytest.mark.parametrize(
    "completions",
    [[], [[Completion("", 1, "stop")]], [[Completion("", 1, "stop")] * 2, [Completion("", 1, "stop")]]],
    ids=["no questions", "too few samples", "too many questions"],
)
def test_summarize_rejects_completions_of_another_shape(completions):
    grade = QuestionGrade("a", ["1", "1"], [0, 0], [True])
    with pytest.raises(ValueError):
        summarize([grade], completions)


@pytest.mark.parametrize("ks", [[0], [3], [-1]])
def test_summarize_rejects_ks_outside_1_to_n(ks):
    grade = QuestionGrade("a", ["1", "1"], [0, 0], [True])
    with pytest.raises(ValueError, match="pass@k"):
        summarize([grade], ks=ks)


def test_summarize_rejects_no_questions_and_unknown_classes():
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError, match="class_correct"):
        summarize([QuestionGrade("a", ["1", "2"], [0, 1], [True])])
