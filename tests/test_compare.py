"""Paired bootstrap statistics (ttrl_bench.report.stats) and per-question scores of records."""
from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from ttrl_bench.measure import metrics
from ttrl_bench.report.stats import paired_difference, parse_metric, per_question_metric
from ttrl_bench.errors import UsageError
from ttrl_bench.measure.records import QuestionScore, Record


def _record(per_question: list[QuestionScore]) -> Record:
    return Record(
        model="m", model_fingerprint="mf", task="t", data_fingerprint="df", method="base",
        metrics={"pass@1": {"mean": 0.0, "stderr": 0.0}}, per_question=per_question, sampling={},
    )


# --- paired_difference ---------------------------------------------------------------


def test_mean_and_stderr_follow_the_per_question_differences():
    a = [0.1, 0.5, 0.9, 0.3, 0.6]
    b = [0.2, 0.4, 1.0, 0.7, 0.6]
    d = [y - x for x, y in zip(a, b)]
    result = paired_difference(a, b, n_boot=200)
    assert result.mean_diff == pytest.approx(statistics.fmean(d))
    assert result.stderr == pytest.approx(statistics.stdev(d) / math.sqrt(len(d)))
    assert result.n_questions == 5


def test_same_seed_same_result_other_seed_other_interval():
    rng = np.random.default_rng(5)
    a, b = rng.random(40), rng.random(40)
    assert paired_difference(a, b, seed=3) == paired_difference(a, b, seed=3)
    other = paired_difference(a, b, seed=4)
    assert (other.ci_low, other.ci_high) != (paired_difference(a, b, seed=3).ci_low, paired_difference(a, b, seed=3).ci_high)


def test_large_question_set_interval_matches_the_normal_approximation():
    # 5000 questions x 1000 resamples crosses the chunking threshold of the resampler.
    rng = np.random.default_rng(11)
    a = rng.random(5000)
    b = a + rng.normal(0.01, 0.2, 5000)
    result = paired_difference(a, b, n_boot=1000, seed=1)
    assert result.ci_low < result.mean_diff < result.ci_high
    half_width = (result.ci_high - result.ci_low) / 2
    assert half_width == pytest.approx(1.96 * result.stderr, rel=0.15)


def test_clear_drop_gives_smallest_p_worse_and_no_evidence_of_improvement():
    a = [0.8] * 20 + [0.6] * 20
    b = [x - 0.3 for x in a]
    result = paired_difference(a, b, n_boot=999)
    assert result.mean_diff == pytest.approx(-0.3)
    assert result.p_worse == pytest.approx(1 / 1000)  # no resample reaches 0; "+1" keeps p > 0
    assert result.p_better == 1.0
    assert result.p_value == pytest.approx(2 / 1000)
    assert result.ci_high < 0


def test_mirror_image_swaps_the_one_sided_p_values():
    rng = np.random.default_rng(2)
    a, b = rng.random(30), rng.random(30)
    forward = paired_difference(a, b, seed=7)
    backward = paired_difference(b, a, seed=7)
    assert backward.mean_diff == pytest.approx(-forward.mean_diff)
    assert backward.p_worse == pytest.approx(forward.p_better)
    assert backward.p_better == pytest.approx(forward.p_worse)
    assert forward.p_value == pytest.approx(min(1.0, 2 * min(forward.p_worse, forward.p_better)))


def test_identical_scores_show_no_difference_at_all():
    result = paired_difference([0.25, 0.5, 1.0], [0.25, 0.5, 1.0])
    assert (result.mean_diff, result.stderr, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0, 0.0)
    assert result.p_value == result.p_worse == result.p_better == 1.0


def test_one_sided_test_holds_its_level_under_no_difference():
    """Both runs draw 16 samples per question from the same per-question accuracy:
    the share of false "run is worse" calls at alpha 0.05 must stay near 5%."""
    rng = np.random.default_rng(2024)
    replicates, alpha = 300, 0.05
    false_calls = 0
    for i in range(replicates):
        p = rng.random(60)
        a = rng.binomial(16, p) / 16
        b = rng.binomial(16, p) / 16
        false_calls += paired_difference(a, b, n_boot=1000, seed=i).p_worse < alpha
    rate = false_calls / replicates
    slack = 3 * math.sqrt(alpha * (1 - alpha) / replicates)
    assert 0.005 < rate < alpha + slack


@pytest.mark.parametrize(
    "a, b, kwargs, message",
    [
        ([0.1, 0.2], [0.1], {}, "equal length"),
        ([], [], {}, "empty"),
        ([0.1, float("nan")], [0.1, 0.2], {}, "finite"),
        ([0.1], [0.2], {"alpha": 1.5}, "alpha"),
        ([0.1], [0.2], {"n_boot": 0}, "n_boot"),
    ],
)
def test_invalid_inputs_are_refused(a, b, kwargs, message):
    with pytest.raises(ValueError, match=message):
        paired_difference(a, b, **kwargs)


# --- metric names and per-question scores ----------------------------------------------


def test_metric_names_parse_and_bad_ones_name_the_flag():
    assert parse_metric("pass@4") == ("pass", 4)
    assert parse_metric("maj@16") == ("maj", 16)
    for bad in ("pass@0", "avg@16", "pass@", "maj16", "pass@1 "):
        with pytest.raises(UsageError, match="--metric"):
            parse_metric(bad)


def test_pass_at_1_is_c_over_n_and_maj_is_the_vote():
    record = _record([QuestionScore("a", 16, 4, True), QuestionScore("b", 16, 0, False)])
    assert per_question_metric(record, "pass@1") == {"a": 0.25, "b": 0.0}
    assert per_question_metric(record, "maj@16") == {"a": 1.0, "b": 0.0}


def test_pass_at_k_is_the_unbiased_estimator():
    record = _record([QuestionScore("a", 8, 3, True), QuestionScore("b", 8, 0, False), QuestionScore("c", 8, 7, True)])
    scores = per_question_metric(record, "pass@4")
    for q in record.per_question:
        expected = 1 - math.comb(q.n - q.c, 4) / math.comb(q.n, 4)
        assert scores[q.id] == pytest.approx(expected)
        assert scores[q.id] == metrics.pass_at_k(q.n, q.c, 4)


@pytest.mark.parametrize(
    "per_question, metric, message",
    [
        ([QuestionScore("a", 8, 3, True)], "maj@16", "8 samples"),
        ([QuestionScore("a", 2, 1, True)], "pass@4", "only 2 samples"),
        ([QuestionScore("a", 4, 1, True), QuestionScore("a", 4, 2, True)], "pass@1", "twice"),
        ([QuestionScore("a", 4, 5, True)], "pass@1", "0 <= c <= n"),
        ([], "pass@1", "empty"),
    ],
)
def test_scores_that_cannot_be_computed_are_usage_errors(per_question, metric, message):
    with pytest.raises(UsageError, match=message):
        per_question_metric(_record(per_question), metric)
