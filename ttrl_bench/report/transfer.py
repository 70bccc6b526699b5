"""The leaderboard's "transfer" layout: rows adapted-on, columns measured-on, cells gain over base.

One row per (model, method, adapted on); one column per task measured on (per metric when several).
A cell is the adapted model's gain over the SAME base model on the SAME question ids of the column's
task, with the paired standard error over those questions. A record adapted with ``--holdout`` splits
its own task into two columns: "<task> (adapted part)" and "<task> (held out)", each paired over
that part's questions only. Rows of records adapted on a task without a split fill that task's plain
column (in-sample); transfer records (``adapted_on`` set) fill the other tasks' columns.
"""
from __future__ import annotations

from collections.abc import Sequence

from ttrl_bench.adapt.methods import display_name, sort_methods
from ttrl_bench.errors import UsageError
from ttrl_bench.measure.records import Record
from ttrl_bench.report.generalization import paired_gain
from ttrl_bench.report.stats import per_question_metric
from ttrl_bench.report.table import Cell, PairedGain, Table

ADAPTED_PART = "adapted part"
HELD_OUT = "held out"


def adapted_label(r: Record) -> str:
    task = r.adapted_on or r.task
    if r.holdout is not None:
        return f"{task} (holdout {r.holdout['fraction']:g}, seed {r.holdout['seed']})"
    return task


def _columns(r: Record) -> list[tuple[str, list[str] | None]]:
    """(column, the question ids it is paired over or None for all) that record ``r`` fills."""
    if r.holdout is not None and (r.adapted_on or r.task) == r.task:
        held = set(r.holdout["held_out_ids"])
        ids = [q.id for q in r.per_question]
        return [(f"{r.task} ({ADAPTED_PART})", [i for i in ids if i not in held]),
                (f"{r.task} ({HELD_OUT})", [i for i in ids if i in held])]
    return [(r.task, None)]


def transfer_table(records: Sequence[Record], metrics: tuple[str, ...]) -> Table:
    bases: dict[tuple[str, str], Record] = {}
    for r in records:
        if r.method != "base":
            continue
        seen = bases.setdefault((r.model, r.task), r)
        if seen is not r:
            raise UsageError(f"leaderboard: two base records for model {r.model!r}, task {r.task!r}; "
                             "a transfer cell needs one base to pair with")
    cells: dict[tuple[str, str, str], dict[str, Record]] = {}  # row -> column -> record
    order: dict[str, tuple] = {}
    for r in records:
        if r.method == "base":
            continue
        if (r.model, r.task) not in bases:
            raise UsageError(f"leaderboard: no base record for model {r.model!r} on {r.task!r} "
                             f"to pair {r.method!r} ({adapted_label(r)}) with")
        row = (r.model, r.method, adapted_label(r))
        for column, _ in _columns(r):
            if column in cells.setdefault(row, {}):
                raise UsageError(f"leaderboard: two records for model {r.model!r}, method {r.method!r}, "
                                 f"adapted on {row[2]!r}, measured on {column!r}")
            cells[row][column] = r
            order[column] = (r.task, column)
    if not cells:
        raise UsageError("--layout transfer: no adapted records (only base measurements)")
    columns_ordered = sorted(order, key=order.__getitem__)
    rank = {m: i for i, m in enumerate(sort_methods({row[1] for row in cells}))}
    rows_ordered = sorted(cells, key=lambda k: (k[0].casefold(), k[0], rank[k[1]], k[2]))

    headers: list[tuple[str, type]] = [("model", str), ("method", str), ("adapted on", str)]
    for column in columns_ordered:
        for metric in metrics:
            headers.append((f"{column} {metric}" if len(metrics) > 1 else column, PairedGain))
    rows = []
    for key in rows_ordered:
        model, method, label = key
        row: list[Cell] = [model, display_name(method), label]
        for column in columns_ordered:
            rec = cells[key].get(column)
            for metric in metrics:
                row.append(None if rec is None else _cell(rec, bases[(rec.model, rec.task)], column, metric))
        rows.append(tuple(row))
    return Table("transfer", metrics, tuple(h for h, _ in headers), tuple(k for _, k in headers), tuple(rows))


def _cell(rec: Record, base: Record, column: str, metric: str) -> PairedGain | None:
    if metric not in rec.metrics and metric.startswith("maj@"):
        return None
    if rec.data_fingerprint != base.data_fingerprint:
        raise UsageError(f"leaderboard: {rec.method} ({adapted_label(rec)}) on {rec.task}: data_fingerprint differs "
                         "from the base record's; their scores are not on the same questions")
    ids = dict(_columns(rec))[column]
    where = f"leaderboard: {rec.model} / {rec.method} ({adapted_label(rec)}) on {column}"
    mean, se, q = paired_gain(per_question_metric(rec, metric), per_question_metric(base, metric), ids, where=where)
    return PairedGain(100 * mean, 100 * se, q)
