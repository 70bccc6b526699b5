"""Leaderboard tables: fixed records rendered in every format and layout against tests/golden/,
the numbers behind the cells, escaping, refusals and the CLI handler.

Regenerate the goldens after an intended change with
    UPDATE_GOLDEN=1 python -m pytest tests/test_leaderboard.py tests/test_check.py
and review the diff of tests/golden/ before committing it.
"""
from __future__ import annotations

import functools
import base64
import csv
import io
import json
import re
from pathlib import Path

import pytest
from conftest import assert_golden, run_report_command

from ttrl_bench.errors import UsageError
from ttrl_bench.report.leaderboard import FORMATS, build_table, render_leaderboard
from ttrl_bench.measure.records import QuestionScore, Record, write_record

EXTENSION = {"markdown": "md", "latex": "tex", "csv": "csv", "html": "html", "json": "json"}
QWEN = "Qwen2.5-Math-1.5B"
MARKUP = '<script>alert("x")</script> & a_b|c'
# A valid 1x1 PNG, fixed bytes so the HTML golden does not depend on matplotlib's encoder.
TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)

# (model, task, method, pass@1 mean, pass@1 stderr); maj@16 is pass@1 + 0.1 with the same stderr.
FIXED = [
    (QWEN, "aime24", "base", 0.077, 0.048),
    (QWEN, "aime24", "ttrl", 0.158, 0.066),
    (QWEN, "aime24", "leakage", 0.200, 0.073),
    (QWEN, "aime24", "random", 0.100, 0.055),
    (QWEN, "math500", "base", 0.327, 0.021),
    (QWEN, "math500", "ttrl", 0.730, 0.020),
    (QWEN, "math500", "leakage", 0.750, 0.019),
    (MARKUP, "math500", "base", 0.500, 0.022),
    (MARKUP, "math500", "ttrl", 0.600, 0.022),
    (MARKUP, "math500", "leakage", 0.450, 0.022),  # leakage below base: no share of its gain
]




def make_record(model, task, method, mean, stderr, **changes) -> Record:
    fields = dict(
        model=model, model_fingerprint=f"fp-{model}", task=task, data_fingerprint=f"data-{task}", method=method,
        metrics={"pass@1": {"mean": mean, "stderr": stderr}, "maj@16": {"mean": mean + 0.1, "stderr": stderr}},
        per_question=[QuestionScore("q0", 16, round(16 * mean), mean > 0.5)], sampling={"n": 16},
    )
    fields.update(changes)
    return Record(**fields)


def fixed_records() -> list[Record]:
    records = [make_record(*row) for row in FIXED]
    # One run plot that exists and one that does not (the page notes it and goes on).
    records[1] = make_record(
        *FIXED[1], plots=["plots/train.png", "plots/missing.png"], extra={"best_step": 40, "label_accuracy": 0.8125}
    )
    return records


@pytest.fixture
def record_dir(tmp_path) -> Path:
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "train.png").write_bytes(TINY_PNG)
    return tmp_path


# --- golden outputs ----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["paper", "long"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_and_layout_matches_golden(fmt, layout, record_dir):
    text = render_leaderboard(fixed_records(), fmt, layout=layout, record_dir=record_dir)
    if fmt == "html":  # figures are PNGs from matplotlib, whose bytes vary by version: tests/test_figures.py checks them
        text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png;base64,...", text)
    assert_golden(f"leaderboard_{layout}.{EXTENSION[fmt]}", text)


def test_several_metrics_match_golden():
    text = render_leaderboard(fixed_records(), "markdown", metrics=("pass@1", "maj@16"), layout="long")
    assert_golden("leaderboard_long_two_metrics.md", text)


# --- the numbers behind the cells -----------------------------------------------------------------


def _row(table, model):
    (row,) = [r for r in table.rows if r[0] == model]
    return dict(zip(table.headers, row))


def test_paper_cells_hold_scores_gain_and_share_of_the_leakage_gain():
    row = _row(build_table(fixed_records()), QWEN)
    base, ttrl, leak = 7.7, 15.8, 20.0
    assert row["aime24 TTRL"].mean == pytest.approx(ttrl) and row["aime24 TTRL"].stderr == pytest.approx(6.6)
    assert row["aime24 TTRL gain"].points == pytest.approx(ttrl - base)
    assert row["aime24 TTRL gain"].percent == pytest.approx(100 * (ttrl - base) / base)
    assert row["aime24 share of leakage gain"].fraction == pytest.approx((ttrl - base) / (leak - base))
    assert row["aime24 random"].mean == pytest.approx(10.0)
    assert row["math500 random"] is None  # the control was not run on math500


def test_average_is_the_mean_over_tasks_and_needs_every_task():
    table = build_table(fixed_records())
    qwen = _row(table, QWEN)
    assert qwen["average base"].mean == pytest.approx((7.7 + 32.7) / 2)
    assert qwen["average base"].stderr == pytest.approx((4.8**2 + 2.1**2) ** 0.5 / 2)
    assert qwen["average random"] is None
    assert _row(table, MARKUP)["average TTRL"] is None  # this model has no aime24 result


def test_share_is_missing_when_leakage_does_not_beat_base():
    row = _row(build_table(fixed_records()), MARKUP)
    assert row["math500 TTRL gain"].points == pytest.approx(10.0)
    assert row["math500 share of leakage gain"] is None


def test_long_layout_has_one_row_per_record_and_controls_get_a_share_too():
    table = build_table(fixed_records(), layout="long")
    assert len(table.rows) == len(FIXED)
    random_row = [dict(zip(table.headers, r)) for r in table.rows if r[2] == "random"][0]
    assert random_row["share of leakage gain"].fraction == pytest.approx((10.0 - 7.7) / (20.0 - 7.7))
    base_rows = [dict(zip(table.headers, r)) for r in table.rows if r[2] == "base"]
    assert all(r["gain"] is None for r in base_rows)


def test_methods_beyond_the_known_ones_become_extra_columns():
    records = fixed_records() + [make_record(QWEN, "aime24", "my-reward", 0.12, 0.05)]
    headers = build_table(records).headers
    assert headers.index("aime24 my-reward") == headers.index("aime24 random") + 1


# --- escaping: every format keeps a record's strings literal --------------------------------------


def test_markdown_and_latex_escape_a_name_with_markup():
    md = render_leaderboard(fixed_records(), "markdown")
    assert "<script>" not in md
    assert "&lt;script&gt;alert(\"x\")&lt;/script&gt; &amp; a\\_b\\|c" in md
    assert all(line.count("|") - line.count("\\|") == md.splitlines()[0].count("|") for line in md.splitlines())
    tex = render_leaderboard(fixed_records(), "latex")
    assert "a\\_b" in tex and "\\&" in tex and "<script>" not in tex


def test_csv_and_json_carry_the_exact_name_and_plain_numbers():
    rows = list(csv.DictReader(io.StringIO(render_leaderboard(fixed_records(), "csv", layout="long"))))
    assert {r["model"] for r in rows} == {QWEN, MARKUP}
    qwen_ttrl = [r for r in rows if r["model"] == QWEN and r["task"] == "aime24" and r["method"] == "TTRL"][0]
    assert float(qwen_ttrl["pass@1"]) == pytest.approx(15.8) and float(qwen_ttrl["pass@1 stderr"]) == pytest.approx(6.6)
    data = json.loads(render_leaderboard(fixed_records(), "json"))
    assert [r["model"] for r in data["rows"]] == [MARKUP, QWEN]
    assert data["rows"][1]["aime24 TTRL"] == {"mean": 15.8, "stderr": 6.6}


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fmt": "xml"}, "--format 'xml'"),
        ({"layout": "wide"}, "--layout 'wide'"),
        ({"metrics": ("avg@16",)}, "--metric 'avg@16'"),
        ({"metrics": ("maj@64",)}, "--metric maj@64: no record has it"),
        ({"metrics": ()}, "--metric"),
    ],
)
def test_unknown_format_layout_or_metric_names_the_flag(kwargs, message):
    args = {"fmt": "markdown", **kwargs}
    with pytest.raises(UsageError, match=message):
        render_leaderboard(fixed_records(), args.pop("fmt"), **args)


def test_duplicate_records_and_mixed_question_sets_are_refused():
    with pytest.raises(UsageError, match="two records"):
        render_leaderboard(fixed_records() + [make_record(*FIXED[0])], "markdown")
    other_questions = make_record(QWEN, "aime24", "format", 0.1, 0.05, data_fingerprint="data-other")
    with pytest.raises(UsageError, match="data_fingerprint"):
        render_leaderboard(fixed_records() + [other_questions], "markdown")
    with pytest.raises(UsageError, match="no records"):
        render_leaderboard([], "markdown")


# --- the CLI handler ----------------------------------------------------------------------------


_run_cli = functools.partial(run_report_command, "leaderboard")


def test_cli_writes_the_table_and_the_bar_plot(tmp_path, capsys):
    for r in fixed_records():
        write_record(r, tmp_path / "lb")
    assert _run_cli(str(tmp_path / "lb"), "--layout", "long", "--metric", "pass@1,maj@16") == 0
    assert capsys.readouterr().out == render_leaderboard(fixed_records(), "markdown", metrics=("pass@1", "maj@16"), layout="long")
    out, plot = tmp_path / "site" / "index.html", tmp_path / "bars.png"
    assert _run_cli(str(tmp_path / "lb"), "--format", "html", "-o", str(out), "--plot", str(plot)) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(UsageError, match="no records"):
        (tmp_path / "empty").mkdir()
        _run_cli(str(tmp_path / "empty"))
