"""The CI regression gate: verdicts on constructed pairs, exit codes, refusals, rendering, CLI wiring."""
from __future__ import annotations

import functools
import math
from dataclasses import replace

import numpy as np
import pytest
from conftest import assert_golden, run_report_command

from ttrl_bench.report.gate import IMPROVEMENT, NO_CHANGE, REGRESSION, CheckResult, CheckRow, check, render_check
from ttrl_bench.report.stats import PairedDiff
from ttrl_bench.errors import UsageError
from ttrl_bench.measure.records import QuestionScore, Record, write_record

N = 16




def record(cs, *, model="base-model", task="aime24", method="base", fingerprint="data-1", ids=None, maj=None) -> Record:
    ids = ids or [f"q{i}" for i in range(len(cs))]
    maj = maj if maj is not None else [c > N // 2 for c in cs]
    per_q = [QuestionScore(i, N, int(c), bool(m)) for i, c, m in zip(ids, cs, maj)]
    mean = float(np.mean(cs)) / N
    return Record(
        model=model, model_fingerprint="mf", task=task, data_fingerprint=fingerprint, method=method,
        metrics={"pass@1": {"mean": mean, "stderr": 0.0}, f"maj@{N}": {"mean": float(np.mean(maj)), "stderr": 0.0}},
        per_question=per_q, sampling={"n": N},
    )


BASE_CS = [int(c) for c in np.random.default_rng(0).integers(4, 13, size=40)]  # 40 questions, 4..12 of 16 correct


# --- verdicts on constructed pairs ------------------------------------------------------


def test_clear_regression_fails_the_gate():
    run = [c - 4 for c in BASE_CS]  # every question loses a quarter of its correct samples
    result = check([record(BASE_CS)], [record(run, model="new-model")])
    (row,) = result.rows
    assert row.verdict == REGRESSION
    assert row.diff.mean_diff == pytest.approx(-4 / N)
    assert row.diff.p_worse < 0.05
    assert result.exit_code == 1


def test_clear_improvement_passes_the_gate():
    run = [c + 4 for c in BASE_CS]
    result = check([record(BASE_CS)], [record(run)])
    assert result.rows[0].verdict == IMPROVEMENT
    assert result.exit_code == 0


def test_noise_only_is_no_significant_change():
    # Each run question gains or loses one correct sample at random: no systematic change.
    rng = np.random.default_rng(1)
    run = [c + int(rng.choice([-1, 1])) for c in BASE_CS]
    result = check([record(BASE_CS)], [record(run)])
    assert result.rows[0].verdict == NO_CHANGE
    assert result.exit_code == 0


def test_min_effect_lets_a_small_but_certain_drop_pass():
    run = [c - 1 if i % 3 == 0 else c for i, c in enumerate(BASE_CS)]  # ~2 points, on a third of the questions
    drop = -100 * (sum(run) - sum(BASE_CS)) / (N * len(BASE_CS))
    assert check([record(BASE_CS)], [record(run)]).exit_code == 1
    assert check([record(BASE_CS)], [record(run)], min_effect=drop - 0.5).exit_code == 1
    relaxed = check([record(BASE_CS)], [record(run)], min_effect=drop + 0.5)
    assert relaxed.rows[0].verdict == NO_CHANGE and relaxed.exit_code == 0


def test_one_regressed_pair_among_several_fails_and_unpaired_ones_are_listed():
    baseline = [record(BASE_CS, method="base"), record(BASE_CS, method="ttrl"), record(BASE_CS, method="leakage")]
    run = [record(BASE_CS, method="base"), record([c - 4 for c in BASE_CS], method="ttrl"), record(BASE_CS, method="random")]
    result = check(baseline, run)
    verdicts = {(r.task, r.method): r.verdict for r in result.rows}
    assert verdicts == {("aime24", "base"): NO_CHANGE, ("aime24", "ttrl"): REGRESSION}
    assert result.exit_code == 1
    assert result.not_compared == ("aime24 / leakage (only in baseline)", "aime24 / random (only in run)")


def test_maj_metric_uses_the_vote_outcome():
    maj = [True] * 40
    worse = [i % 2 == 1 for i in range(40)]  # half the majority votes turn wrong, pass@1 unchanged
    baseline, run = record(BASE_CS, maj=maj), record(BASE_CS, maj=worse)
    assert check([baseline], [run], metric="pass@1").exit_code == 0
    result = check([baseline], [run], metric=f"maj@{N}")
    assert result.rows[0].verdict == REGRESSION
    assert result.rows[0].diff.mean_diff == pytest.approx(-0.5)


def test_pass_at_k_metric_is_compared_per_question():
    run = [c - 4 for c in BASE_CS]
    result = check([record(BASE_CS)], [record(run)], metric="pass@4")
    assert result.rows[0].verdict == REGRESSION

    def pass4(c):  # the estimator's definition, computed here independently
        return 1 - math.comb(N - c, 4) / math.comb(N, 4)

    expected = sum(pass4(r) - pass4(b) for b, r in zip(BASE_CS, run)) / len(BASE_CS)
    assert result.rows[0].diff.mean_diff == pytest.approx(expected)


def test_several_baseline_models_narrow_to_the_runs_model_or_the_named_one():
    baseline = [record(BASE_CS, model="alpha"), record([c - 4 for c in BASE_CS], model="beta")]
    run = [record([c - 2 for c in BASE_CS], model="alpha")]
    assert check(baseline, run).rows[0].baseline_model == "alpha"
    result = check(baseline, run, baseline_model="beta")
    assert result.rows[0].baseline_model == "beta" and result.rows[0].verdict == IMPROVEMENT
    with pytest.raises(UsageError, match="--baseline-model"):
        check(baseline, [record(BASE_CS, model="gamma")])
    with pytest.raises(UsageError, match="--baseline-model 'delta'"):
        check(baseline, run, baseline_model="delta")


# --- refusals ------------------------------------------------------------------------------


def test_different_tasks_are_refused():
    with pytest.raises(UsageError, match="no \\(task, method\\) in common"):
        check([record(BASE_CS, task="aime24")], [record(BASE_CS, task="math500")])


def test_different_question_ids_are_refused():
    ids = [f"x{i}" for i in range(40)]
    with pytest.raises(UsageError, match="question ids differ"):
        check([record(BASE_CS)], [record(BASE_CS, ids=ids)])


def test_different_data_fingerprints_are_refused():
    with pytest.raises(UsageError, match="data_fingerprint"):
        check([record(BASE_CS)], [record(BASE_CS, fingerprint="data-2")])


def test_two_run_records_for_one_pair_are_refused():
    with pytest.raises(UsageError, match="--run: two records"):
        check([record(BASE_CS)], [record(BASE_CS), record(BASE_CS, model="other")])


@pytest.mark.parametrize(
    "kwargs, flag",
    [({"alpha": 0.0}, "--alpha"), ({"alpha": float("nan")}, "--alpha"), ({"min_effect": -1.0}, "--min-effect"),
     ({"metric": "avg@16"}, "--metric"), ({"metric": "maj@8"}, "--metric")],
)
def test_bad_options_name_their_flag(kwargs, flag):
    with pytest.raises(UsageError, match=flag):
        check([record(BASE_CS)], [record(BASE_CS)], **kwargs)


# --- rendering (fixed results, so the goldens do not depend on the resampler) ---------------


def _fixed_result() -> CheckResult:
    def diff(mean, se, lo, hi, pw, pb):
        return PairedDiff(mean, se, lo, hi, min(1.0, 2 * min(pw, pb)), pw, pb, 30)

    name = "<b>Model</b> | x_y"
    rows = (
        CheckRow("aime24", "base", name, "Model-v2", 0.40, 0.30, diff(-0.10, 0.03, -0.15, -0.05, 0.0004, 1.0), REGRESSION),
        CheckRow("aime24", "ttrl", name, "Model-v2", 0.50, 0.52, diff(0.02, 0.02, -0.01, 0.05, 0.84, 0.17), NO_CHANGE),
    )
    return CheckResult("pass@1", 0.05, 0.0, 10000, rows, ("math500 / base (only in baseline)",))


def test_text_verdict_table_matches_golden():
    assert_golden("check.txt", render_check(_fixed_result(), "text"))


def test_markdown_summary_matches_golden_and_escapes_markup():
    text = render_check(_fixed_result(), "markdown")
    assert "<b>" not in text and "&lt;b&gt;Model&lt;/b&gt; \\| x\\_y" in text
    assert_golden("check.md", text)


def test_passing_result_says_so():
    result = _fixed_result()
    passing = replace(result, rows=result.rows[1:])
    assert passing.exit_code == 0
    assert "no significant regression" in render_check(passing, "markdown")
    with pytest.raises(UsageError, match="--format"):
        render_check(passing, "html")


# --- the CLI handler -------------------------------------------------------------------------


_run_cli = functools.partial(run_report_command, "check")


def test_cli_reads_a_run_directory_and_appends_the_job_summary(tmp_path, monkeypatch, capsys):
    baseline_file = write_record(record(BASE_CS), tmp_path / "leaderboards")
    run_dir = tmp_path / "runs" / "r1"
    write_record(record([c - 4 for c in BASE_CS]), run_dir / "records")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    assert _run_cli("--baseline", str(baseline_file), "--run", str(run_dir)) == 1
    assert "REGRESSION in 1 of 1" in capsys.readouterr().out
    written = summary.read_text()
    assert written.startswith("earlier step\n") and "### ❌ ttrl-bench check" in written

    assert _run_cli("--baseline", str(tmp_path / "leaderboards"), "--run", str(baseline_file)) == 0


def test_cli_reads_the_per_method_records_of_a_run_directory(tmp_path, monkeypatch, capsys):
    # `ttrl-bench run` keeps records in RUN_DIR/<method>/records.
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    for method in ("base", "ttrl"):
        write_record(record(BASE_CS, method=method), tmp_path / "leaderboards")
    write_record(record(BASE_CS, method="base"), tmp_path / "run" / "base" / "records")
    write_record(record([c - 4 for c in BASE_CS], method="ttrl"), tmp_path / "run" / "ttrl" / "records")
    assert _run_cli("--baseline", str(tmp_path / "leaderboards"), "--run", str(tmp_path / "run")) == 1
    out = capsys.readouterr().out
    assert "aime24  base" in out and "REGRESSION in 1 of 2" in out


def test_cli_refuses_an_unreadable_record_and_says_why_in_the_summary(tmp_path, monkeypatch):
    good = write_record(record(BASE_CS), tmp_path / "base")
    bad = tmp_path / "run" / "broken.json"
    bad.parent.mkdir()
    bad.write_text("{ not json")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    with pytest.raises(UsageError, match="broken.json"):
        _run_cli("--baseline", str(good), "--run", str(bad.parent))
    assert "invalid input (exit 2)" in summary.read_text()
    with pytest.raises(UsageError, match="no such record"):
        _run_cli("--baseline", str(tmp_path / "nope.json"), "--run", str(good))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no records found"):
        _run_cli("--baseline", str(good), "--run", str(tmp_path / "empty"))


def test_exit_codes_through_the_ttrl_bench_command(tmp_path, monkeypatch):
    from ttrl_bench.cli import main

    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    base = write_record(record(BASE_CS), tmp_path / "base")
    worse = write_record(record([c - 4 for c in BASE_CS]), tmp_path / "worse")
    other_task = write_record(record(BASE_CS, task="math500"), tmp_path / "other")
    assert main(["check", "--baseline", str(base), "--run", str(base)]) == 0
    assert main(["check", "--baseline", str(base), "--run", str(worse)]) == 1
    assert main(["check", "--baseline", str(base), "--run", str(other_task)]) == 2
