"""What `run` adds for readers: the eval curve and signals in records, report.md with figures and sentences,
and its copy next to leaderboard records."""
from __future__ import annotations

from pathlib import Path

from ttrl_bench.adapt.train_log import parse_rows
from ttrl_bench.measure.loop import Measurement
from ttrl_bench.measure.records import QuestionScore, Record, write_record
from ttrl_bench.measure.summary import Summary
from ttrl_bench.pipeline.run_report import copy_report, curve_columns, run_records, signal_columns, write_report


def _measurement(p1: float, maj: float) -> Measurement:
    return Measurement([], [], Summary.from_dict({
        "num_questions": 1, "n": 4,
        "scores": {"pass@1": {"mean": p1, "stderr": 0.01}, "maj@4": {"mean": maj, "stderr": 0.02}},
        "votes": {"ties": 0, "no_answer_samples": 0, "no_answer_questions": 0, "mean_majority_ratio": 0.7},
        "lengths": {"mean_tokens": None, "truncation_rate": None},
    }))


def test_the_curve_starts_at_the_base_measurement_and_follows_the_probes():
    evals = [{"step": 100, "kind": "eval", "pass@1": 0.6, "maj@4": 0.8},  # an old probe row without stderr
             {"step": 50, "kind": "eval", "pass@1": 0.5, "pass@1_stderr": 0.02, "maj@4": 0.7, "maj@4_stderr": 0.03}]
    curve = curve_columns(_measurement(0.4, 0.6), evals, "maj@4")
    assert curve["step"] == [0, 50, 100]
    assert curve["pass@1"] == [0.4, 0.5, 0.6]
    assert curve["pass@1_stderr"] == [0.01, 0.02, None]
    assert curve["maj@4"] == [0.6, 0.7, 0.8]


def test_signals_keep_every_training_step_raw_and_skip_other_rows():
    rows = [{"step": 1, "kind": "train", "label_accuracy": 1.0, "majority_ratio": 0.5, "loss": 0.1},
            {"step": 2, "kind": "train", "label_accuracy": 0.0, "majority_ratio": float("nan")},
            {"step": 2, "kind": "eval", "pass@1": 0.3},
            {"step": 3, "kind": "train", "loss": 0.2}]  # no diagnostics (e.g. the end-of-training summary)
    signals = signal_columns(parse_rows(rows))
    assert signals == {"step": [1, 2], "label_accuracy": [1.0, 0.0], "majority_ratio": [0.5, None]}
    assert signal_columns([]) == {}


def _record(method: str, cs: list[int], **kw) -> Record:
    return Record(model="tiny/m", model_fingerprint="mf", task="toy", data_fingerprint="d", method=method,
                  metrics={"pass@1": {"mean": sum(cs) / (4 * len(cs)), "stderr": 0.1},
                           "maj@4": {"mean": 0.5, "stderr": 0.1}, "pass@4": {"mean": 0.5, "stderr": 0.1}},
                  per_question=[QuestionScore(f"q{i}", 4, c, c > 2) for i, c in enumerate(cs)], sampling={"n": 4}, **kw)


def test_report_has_a_sentence_per_method_the_figures_and_covers_earlier_invocations(tmp_path: Path):
    run = tmp_path / "run"
    curve = {"step": [0, 5, 10], "pass@1": [0.25, 0.5, 0.75], "maj@4": [0.5, 0.5, 0.5]}
    write_record(_record("leakage", [4, 4, 4, 4], curve=curve, extra={"final_step": 10}), run / "leakage" / "records")
    current = {"base": _record("base", [1, 1, 1, 1]),
               "ttrl": _record("ttrl", [3, 3, 3, 3], curve=curve,
                               extra={"final_step": 10, "label_accuracy_first": 0.5, "label_accuracy_last": 0.25})}
    records = run_records(run, current)
    assert list(records) == ["base", "ttrl", "leakage"]
    report = write_report(run, records, maj_key="maj@4").read_text()
    assert "- TTRL: pass@1 25.0 → 75.0 (+50.0 ± 0.0 points), 67% of the leakage gain; label accuracy 50% → 25%." in report
    assert "- leakage: pass@1 25.0 → 100.0" in report
    assert "](figures/toy__curves.png)" in report and (run / "figures" / "toy__curves.png").is_file()
    assert "| leakage" in report  # the comparison table includes the method from the earlier invocation

    rel = copy_report(run, current["ttrl"], tmp_path / "lb")
    assert rel == "reports/tiny-m__toy/report.md"
    assert (tmp_path / "lb" / rel).read_text() == report
    assert (tmp_path / "lb" / "reports" / "tiny-m__toy" / "figures" / "toy__curves.pdf").is_file()
