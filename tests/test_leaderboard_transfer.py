"""The leaderboard's transfer layout (issue 15): rows adapted-on, columns measured-on, cells the gain
over base with its paired standard error, in every format (goldens in tests/golden/leaderboard_transfer.*),
and ``check`` gating transfer rows apart from in-sample ones.

Regenerate the goldens after an intended change with
    UPDATE_GOLDEN=1 python -m pytest tests/test_leaderboard_transfer.py
and review the diff of tests/golden/ before committing it.
"""
from __future__ import annotations

import csv
import io
import json

import pytest
from conftest import assert_golden

from ttrl_bench.errors import UsageError
from ttrl_bench.measure.records import QuestionScore, Record, write_record
from ttrl_bench.report.gate import check
from ttrl_bench.report.leaderboard import FORMATS, build_table, render_leaderboard
from ttrl_bench.measure.records import load_records as records_at

EXTENSION = {"markdown": "md", "latex": "tex", "csv": "csv", "html": "html", "json": "json"}
N = 4
IDS = {"aime24": [f"aime-{i}" for i in range(6)], "math500": [f"m500-{i}" for i in range(8)]}
# per-question correct counts (of N) of each (task, method, adapted on, holdout)
BASE = {"aime24": [0, 0, 1, 1, 2, 0], "math500": [1, 2, 2, 3, 0, 1, 4, 2]}
ADAPTED = {
    ("aime24", "ttrl", None): [2, 1, 1, 3, 2, 1],          # in-sample: +1 on 4 of 6 questions
    ("math500", "ttrl", "aime24"): [1, 3, 2, 3, 1, 1, 4, 3],  # transfer: +1 on 3 of 8
    ("math500", "leakage", "aime24"): [2, 3, 3, 4, 1, 2, 4, 3],  # transfer: +1 on 7 of 8
    ("math500", "ttrl", "math500"): [4, 4, 4, 4, 0, 1, 4, 2],  # holdout: +3,+2,+2,+1 adapted; 0 held out
    ("aime24", "ttrl", "math500"): [0, 0, 1, 1, 2, 0],      # transfer back: no change
}
HOLDOUT = {"fraction": 0.5, "seed": 1, "held_out_ids": IDS["math500"][4:]}


def rec(task, method, counts, **changes) -> Record:
    per_q = [QuestionScore(i, N, c, c > N // 2) for i, c in zip(IDS[task], counts)]
    mean = sum(counts) / (N * len(counts))
    fields = dict(model="Qwen2.5-Math-1.5B", model_fingerprint="fp", task=task, data_fingerprint=f"data-{task}",
                  method=method, per_question=per_q, sampling={"n": N},
                  metrics={"pass@1": {"mean": mean, "stderr": 0.01}, "maj@4": {"mean": 0.5, "stderr": 0.1}})
    fields.update(changes)
    return Record(**fields)


def transfer_records() -> list[Record]:
    out = [rec(t, "base", c) for t, c in BASE.items()]
    for (task, method, adapted_on), counts in ADAPTED.items():
        if adapted_on == task:  # the held-out run
            out.append(rec(task, method, counts, holdout=HOLDOUT))
        else:
            out.append(rec(task, method, counts, adapted_on=adapted_on if adapted_on != task else None))
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_transfer_layout_matches_golden_in_every_format(fmt, tmp_path):
    text = render_leaderboard(transfer_records(), fmt, layout="transfer", record_dir=tmp_path)
    assert_golden(f"leaderboard_transfer.{EXTENSION[fmt]}", text)


def cells(table) -> dict[tuple[str, str], dict]:
    return {(row[1], row[2]): dict(zip(table.headers[3:], row[3:])) for row in table.rows}


def test_cells_are_paired_gains_over_the_base_on_the_columns_questions():
    table = build_table(transfer_records(), layout="transfer")
    assert table.headers == ("model", "method", "adapted on", "aime24", "math500",
                             "math500 (adapted part)", "math500 (held out)")
    c = cells(table)
    ttrl_aime = c[("TTRL", "aime24")]
    # in-sample: diffs (2,1,0,2,0,1)/4 -> mean 25.0 points
    assert ttrl_aime["aime24"].points == pytest.approx(25.0) and ttrl_aime["aime24"].questions == 6
    assert ttrl_aime["math500"].points == pytest.approx(100 * 3 / 32)  # transfer: paired over math500's 8 ids
    assert ttrl_aime["math500 (held out)"] is None
    held = c[("TTRL", "math500 (holdout 0.5, seed 1)")]
    assert held["math500 (adapted part)"].points == pytest.approx(100 * 8 / 16)
    assert held["math500 (adapted part)"].questions == 4
    assert held["math500 (held out)"].points == pytest.approx(0.0) and held["math500 (held out)"].stderr == 0.0
    assert held["aime24"] is None
    assert c[("TTRL", "math500")]["aime24"].points == pytest.approx(0.0)
    # leakage: diffs 1,1,1,1,1,1,0,1 (quarters): sample std 0.25 * sqrt(p (1 - p) 8/7) with p = 7/8,
    # i.e. 0.25 / sqrt(8); s.e. = std / sqrt(8) = 0.25 / 8
    leak = c[("leakage", "aime24")]["math500"]
    assert leak.points == pytest.approx(100 * 7 / 32)
    assert leak.stderr == pytest.approx(100 * 0.25 / 8)


def test_csv_and_json_carry_points_and_paired_stderr():
    rows = list(csv.DictReader(io.StringIO(render_leaderboard(transfer_records(), "csv", layout="transfer"))))
    ttrl = next(r for r in rows if r["method"] == "TTRL" and r["adapted on"] == "aime24")
    assert float(ttrl["aime24 (points)"]) == 25.0
    assert float(ttrl["aime24 (paired stderr)"]) > 0
    data = json.loads(render_leaderboard(transfer_records(), "json", layout="transfer"))
    assert data["layout"] == "transfer"
    row = next(r for r in data["rows"] if r["adapted on"] == "aime24" and r["method"] == "TTRL")
    assert row["math500"]["questions"] == 8 and row["math500"]["points"] == pytest.approx(9.375)


def test_paper_and_long_leave_transfer_and_holdout_rows_to_the_transfer_layout():
    long = build_table(transfer_records(), layout="long")
    assert [(r[1], r[2]) for r in long.rows] == [("aime24", "base"), ("aime24", "TTRL"), ("math500", "base")]
    only = [r for r in transfer_records() if r.origin]
    with pytest.raises(UsageError, match="use --layout transfer"):
        build_table(only, layout="paper")


def test_a_cell_without_its_base_or_on_other_questions_is_refused():
    records = [r for r in transfer_records() if not (r.method == "base" and r.task == "math500")]
    with pytest.raises(UsageError, match="no base record for model .* on 'math500'"):
        build_table(records, layout="transfer")
    records = transfer_records()
    records[1] = rec("math500", "base", BASE["math500"][:7] + [0], per_question=[
        QuestionScore(f"other-{i}", N, 1, False) for i in range(8)])
    with pytest.raises(UsageError, match="question ids do not pair"):
        build_table(records, layout="transfer")


def test_check_gates_transfer_rows_apart_from_in_sample_rows(tmp_path):
    baseline = transfer_records()
    run = [r for r in transfer_records()]
    # the transfer row adapted on aime24, measured on math500, drops 3 of 4 samples on every question
    i = next(k for k, r in enumerate(run) if r.method == "ttrl" and r.adapted_on == "aime24")
    run[i] = rec("math500", "ttrl", [0] * 8, adapted_on="aime24")
    result = check(baseline, run, n_boot=2000)
    verdicts = {(r.task, r.method, r.origin): r.verdict for r in result.rows}
    assert verdicts[("math500", "ttrl", "adapted on aime24")] == "regression"
    assert verdicts[("aime24", "ttrl", "")] == "no significant change"
    assert verdicts[("math500", "ttrl", "holdout 0.5 seed 1")] == "no significant change"
    assert result.exit_code == 1
    # and a run directory's transfer records are found by `check` and `leaderboard`
    for r in run:
        sub = tmp_path / "run" / ("transfer/" + r.task if r.adapted_on else "") / r.method / "records"
        write_record(r, sub)
    found = records_at(tmp_path / "run")
    assert {(r.task, r.method, r.origin) for r in found} == {(r.task, r.method, r.origin) for r in run}
