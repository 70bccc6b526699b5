"""Training-log and leaderboard plots: valid PNGs, absent keys tolerated, panels follow the data."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import pytest

from ttrl_bench.adapt.train_log import ProbeRow, TrainStep, parse_rows
from ttrl_bench.errors import UsageError
from ttrl_bench.report.plots import plot_leaderboard, plot_training
from ttrl_bench.measure.records import QuestionScore, Record

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_shape(path: Path) -> tuple[int, int]:
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    pixels = matplotlib.image.imread(path)  # decodes the whole file: a truncated PNG fails here
    return pixels.shape[0], pixels.shape[1]


def _full_log() -> list:
    log = [TrainStep(s, {"label_accuracy": 0.4 + s / 200, "reward_accuracy": 0.8, "reward_mean": 0.3 + s / 300})
           for s in range(1, 61)]
    log += [ProbeRow(s, {"pass@1": 0.2 + s / 200, "maj@16": 0.5 + s / 300}) for s in (0, 20, 40, 60)]  # sparse evals
    return log


def test_training_plot_with_every_key_is_a_png_with_two_panels(tmp_path):
    height, width = _png_shape(plot_training(_full_log(), tmp_path / "a" / "train.png", title="TTRL"))
    assert width == 700
    one_panel, _ = _png_shape(plot_training([ProbeRow(1, {"pass@1": 0.5})], tmp_path / "one.png", title="TTRL"))
    assert height > one_panel  # the training-signal panel was added because its keys are present


@pytest.mark.parametrize(
    "log",
    [
        [ProbeRow(0, {"pass@1": 0.1}), TrainStep(5), ProbeRow(10, {"pass@1": 0.3})],  # eval only, a row without values
        [TrainStep(i, {"reward_mean": -0.5 * i}) for i in range(5)],  # an unbounded reward, nothing else
        [ProbeRow(0, {"maj@64": 0.2}), TrainStep(0, {"label_accuracy": float("nan")}),
         ProbeRow(1, {"maj@64": float("nan")})],  # NaN skipped
        [],  # nothing logged at all
    ],
)
def test_absent_or_empty_keys_are_tolerated(tmp_path, log):
    _png_shape(plot_training(log, tmp_path / "t.png", title="run"))


def test_a_title_with_dollar_signs_is_drawn_literally(tmp_path):
    # Unescaped, "$\\frac{$" is invalid mathtext and matplotlib raises while drawing.
    _png_shape(plot_training(_full_log(), tmp_path / "t.png", title="model $\\frac{$ <b>"))


def test_a_row_without_a_step_is_an_error_naming_the_row():
    with pytest.raises(ValueError, match="row 1"):
        parse_rows([{"step": 0, "kind": "eval", "pass@1": 0.1}, {"kind": "eval", "pass@1": 0.2}])


def test_log_rows_are_typed_by_kind_and_give_back_the_rows_as_written():
    written = [{"step": 1, "kind": "train", "loss": 0.5, "reward": 0.25, "peak_memory_gib": 1.5},
               {"step": 2, "kind": "eval", "backend": "hf", "questions": 4, "pass@1": 0.5, "maj@4": 0.75,
                "pass@1_stderr": 0.1, "maj@4_stderr": 0.2, "eval_majority_ratio": 0.6, "pass@4": 1.0, "seconds": 3.5},
               {"step": 3, "kind": "eval", "pass@1": 0.5},  # an older probe row: no backend, questions or seconds
               {"step": 3, "kind": "summary", "train_runtime": 9.0}]  # no kind the readers know: left out
    rows = parse_rows(written)
    assert [type(r) for r in rows] == [TrainStep, ProbeRow, ProbeRow]
    assert rows[0].values["reward"] == 0.25 and rows[1].scores["maj@4"] == 0.75
    assert (rows[1].backend, rows[1].questions, rows[1].seconds) == ("hf", 4, 3.5) and rows[2].backend is None
    assert [json.dumps(r.as_dict()) for r in rows] == [json.dumps(w) for w in written[:3]]


def _record(model: str, task: str, method: str, mean: float) -> Record:
    return Record(
        model=model, model_fingerprint="mf", task=task, data_fingerprint="df", method=method,
        metrics={"pass@1": {"mean": mean, "stderr": 0.03}}, per_question=[QuestionScore("q", 4, 2, True)], sampling={},
    )


def _records(models: list[str]) -> list[Record]:
    return [_record(m, t, meth, 0.1 + 0.1 * i)
            for m in models for t in ("aime24", "math500") for i, meth in enumerate(("base", "ttrl", "leakage", "random"))]


def test_leaderboard_plot_has_one_panel_per_model(tmp_path):
    one, _ = _png_shape(plot_leaderboard(_records(["A"]), tmp_path / "one.png"))
    two, _ = _png_shape(plot_leaderboard(_records(["A", "B $\\sqrt{$"]), tmp_path / "two.png"))
    assert two > one


def test_leaderboard_plot_tolerates_missing_cells(tmp_path):
    records = _records(["A"])[:3] + [_record("B", "math500", "base", 0.4)]
    _png_shape(plot_leaderboard(records, tmp_path / "sparse.png"))


def test_leaderboard_plot_refuses_an_absent_or_malformed_metric(tmp_path):
    with pytest.raises(UsageError, match="--metric maj@16"):
        plot_leaderboard(_records(["A"]), tmp_path / "x.png", metric="maj@16")
    with pytest.raises(UsageError, match="--metric"):
        plot_leaderboard(_records(["A"]), tmp_path / "x.png", metric="accuracy")
