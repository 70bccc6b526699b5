"""Training-log and leaderboard plots: valid PNGs, absent keys tolerated, panels follow the data."""
from __future__ import annotations

from pathlib import Path

import matplotlib.image
import pytest

from ttrl_bench.errors import UsageError
from ttrl_bench.report.plots import plot_leaderboard, plot_training
from ttrl_bench.measure.records import QuestionScore, Record

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_shape(path: Path) -> tuple[int, int]:
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    pixels = matplotlib.image.imread(path)  # decodes the whole file: a truncated PNG fails here
    return pixels.shape[0], pixels.shape[1]


def _full_log() -> list[dict]:
    log = [{"step": s, "label_accuracy": 0.4 + s / 200, "reward_accuracy": 0.8, "reward_mean": 0.3 + s / 300}
           for s in range(1, 61)]
    log += [{"step": s, "pass@1": 0.2 + s / 200, "maj@16": 0.5 + s / 300} for s in (0, 20, 40, 60)]  # sparse evals
    return log


def test_training_plot_with_every_key_is_a_png_with_two_panels(tmp_path):
    height, width = _png_shape(plot_training(_full_log(), tmp_path / "a" / "train.png", title="TTRL"))
    assert width == 700
    one_panel, _ = _png_shape(plot_training([{"step": 1, "pass@1": 0.5}], tmp_path / "one.png", title="TTRL"))
    assert height > one_panel  # the training-signal panel was added because its keys are present


@pytest.mark.parametrize(
    "log",
    [
        [{"step": 0, "pass@1": 0.1}, {"step": 5}, {"step": 10, "pass@1": 0.3}],  # eval only, a row without values
        [{"step": i, "reward_mean": -0.5 * i} for i in range(5)],  # an unbounded reward, nothing else
        [{"step": 0, "maj@64": 0.2, "label_accuracy": None}, {"step": 1, "maj@64": float("nan")}],  # None / NaN skipped
        [],  # nothing logged at all
    ],
)
def test_absent_or_empty_keys_are_tolerated(tmp_path, log):
    _png_shape(plot_training(log, tmp_path / "t.png", title="run"))


def test_a_title_with_dollar_signs_is_drawn_literally(tmp_path):
    # Unescaped, "$\\frac{$" is invalid mathtext and matplotlib raises while drawing.
    _png_shape(plot_training(_full_log(), tmp_path / "t.png", title="model $\\frac{$ <b>"))


def test_a_value_without_a_step_is_an_error_naming_the_row(tmp_path):
    with pytest.raises(ValueError, match="row 1"):
        plot_training([{"step": 0, "pass@1": 0.1}, {"pass@1": 0.2}], tmp_path / "t.png", title="run")


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
