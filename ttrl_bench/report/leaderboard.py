"""Leaderboard tables from records: markdown, LaTeX, CSV, JSON and a self-contained HTML page.

Two layouts share one table model:
- "paper": one row per (base) model; for every task, and for the average over tasks,
  a group of columns base / TTRL / leakage / other methods, the TTRL gain over base
  (points and percent) and the share of the leakage gain TTRL recovers.
- "long": one row per (model, task, method) with every requested metric, its gain
  over the same model's base and its share of the leakage gain.
- "transfer" (report/transfer.py): rows adapted-on, columns measured-on, cells the gain over base
  with its paired standard error; it holds the ``run --eval-tasks`` and ``--holdout`` results,
  which "paper" and "long" leave out (they show each task's own adaptation on all its questions).
Scores are shown in percentage points as "mean ± standard error". The average over
tasks is the plain mean of the task means, its standard error sqrt(sum se^2) / T
(tasks independent); it is shown only when a model has that method on every task.
The HTML page defaults to "long", one table per task with that task's figures (html.py).
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from tabulate import tabulate

from ttrl_bench.report.stats import parse_metric
from ttrl_bench.errors import UsageError
from ttrl_bench.adapt.methods import display_name, sort_methods
from ttrl_bench.measure.records import Record
from ttrl_bench.report.html import render_page
from ttrl_bench.report.table import Cell, Gain, PairedGain, Score, Share, Table, cell_text
from ttrl_bench.report.transfer import transfer_table

MIXED_MARK = " (different question sets)"
LAYOUTS = ("paper", "long", "transfer")


def render_leaderboard(
    records: list[Record],
    fmt: str,
    *,
    metrics: Sequence[str] = ("pass@1",),
    layout: str | None = None,
    record_dir: str | Path | None = None,
    page_dir: str | Path | None = None,
    figures: bool = True,
) -> str:
    """Render records as a leaderboard.

    ``layout`` None: "long" for the HTML page (grouped by task, fits a screen), "paper" for the other formats.
    html only: ``record_dir`` resolves records' report paths, links are relative to ``page_dir``
    (the folder the page is written to), ``figures`` draws each task's figures into the page.
    """
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    layout = layout or ("long" if fmt == "html" else "paper")
    table = build_table(records, metrics=metrics, layout=layout)
    if fmt == "html":  # a page, not only a table: per-task sections, figures and report links need the records
        tables = table if layout != "long" else _task_tables(records, (metrics,) if isinstance(metrics, str) else metrics)
        return render_page(tables, records, Path(record_dir or "."), page_dir=Path(page_dir or "."), figures=figures)
    return FORMATS[fmt](table)


def _task_tables(records: list[Record], metrics: Sequence[str]) -> dict[str, Table]:
    """One long table per task, with the requested metrics that task's records have."""
    out = {}
    for task in sorted({r.task for r in records}):
        rows = [r for r in records if r.task == task]
        present = [m for m in metrics if any(m in r.metrics for r in rows)]
        if present:
            out[task] = _without_task_column(build_table(rows, metrics=present, layout="long"))
    return out


def _without_task_column(table: Table) -> Table:
    """A long table of one task, for a page section that already names the task."""
    keep = [i for i, h in enumerate(table.headers) if h != "task"]
    return Table(table.layout, table.metrics, tuple(table.headers[i] for i in keep), tuple(table.kinds[i] for i in keep),
                 tuple(tuple(row[i] for i in keep) for row in table.rows))


def build_table(records: list[Record], *, metrics: Sequence[str] = ("pass@1",), layout: str = "paper") -> Table:
    if layout not in LAYOUTS:
        raise UsageError(f"--layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    if not records:
        raise UsageError("leaderboard: no records to tabulate")
    if not metrics:
        raise UsageError("--metric: expected at least one metric")
    available = sorted({m for r in records for m in r.metrics})
    for metric in metrics:
        parse_metric(metric)
        if metric not in available:
            raise UsageError(f"--metric {metric}: no record has it (records have {', '.join(available)})")
    if layout == "transfer":
        return transfer_table(records, metrics)
    # paper/long: each task's own adaptation on all its questions; transfer and held-out results have
    # their own layout (they would otherwise collide with the in-sample row of the same task and method)
    records = [r for r in records if not r.origin]
    if not records:
        raise UsageError(f"--layout {layout}: the records are all transfer or held-out results; use --layout transfer")
    grid = _Grid(records)
    if layout == "paper":
        return _paper_table(grid, metrics)
    return _long_table(grid, metrics)


class _Grid:
    """Records indexed by (model, task, method), with their display order."""

    def __init__(self, records: list[Record]):
        self.cells: dict[tuple[str, str, str], Record] = {}
        fingerprints: dict[tuple[str, str], str] = {}
        for r in records:
            key = (r.model, r.task, r.method)
            if key in self.cells:
                raise UsageError(f"leaderboard: two records for model {r.model!r}, task {r.task!r}, method {r.method!r}")
            seen = fingerprints.setdefault((r.model, r.task), r.data_fingerprint)
            if seen != r.data_fingerprint:
                raise UsageError(
                    f"leaderboard: model {r.model!r}, task {r.task!r}: records carry different data_fingerprint "
                    f"values ({seen!r}, {r.data_fingerprint!r}); their scores are not on the same questions"
                )
            self.cells[key] = r
        self.models = sorted({r.model for r in records}, key=lambda m: (m.casefold(), m))
        self.tasks = sorted({r.task for r in records})
        # Tasks whose models were measured on different question sets (another --limit or data file):
        # their scores share a column but are not comparable, and the column says so.
        self.mixed = {t for t in self.tasks if len({fp for (_, task), fp in fingerprints.items() if task == t}) > 1}
        self.methods = sort_methods({r.method for r in records})

    def label(self, task: str | None) -> str:
        """A task's column label; None is the average over tasks."""
        mixed = bool(self.mixed) if task is None else task in self.mixed
        return f"{task or 'average'}{MIXED_MARK if mixed else ''}"

    def score(self, model: str, task: str, method: str, metric: str) -> Score | None:
        record = self.cells.get((model, task, method))
        if record is None or metric not in record.metrics:
            return None
        entry = record.metrics[metric]
        try:
            return Score(100.0 * float(entry["mean"]), 100.0 * float(entry["stderr"]))
        except (TypeError, KeyError, ValueError):
            raise UsageError(
                f"record ({model} / {task} / {method}): field metrics[{metric!r}] needs numbers 'mean' and 'stderr'"
            ) from None

    def average(self, model: str, method: str, metric: str) -> Score | None:
        scores = [self.score(model, t, method, metric) for t in self.tasks]
        if any(s is None for s in scores):
            return None
        return Score(
            sum(s.mean for s in scores) / len(scores),
            math.sqrt(sum(s.stderr**2 for s in scores)) / len(scores),
        )


def _gain(score: Score | None, base: Score | None) -> Gain | None:
    if score is None or base is None:
        return None
    points = score.mean - base.mean
    return Gain(points, 100.0 * points / base.mean if base.mean > 0 else None)


def _share(score: Score | None, base: Score | None, leakage: Score | None) -> Share | None:
    if score is None or base is None or leakage is None or leakage.mean - base.mean <= 0:
        return None
    return Share((score.mean - base.mean) / (leakage.mean - base.mean))


def _method_name(method: str) -> str:
    return display_name(method)


def _paper_table(grid: _Grid, metrics: tuple[str, ...]) -> Table:
    # (column label, task); task None is the average over tasks (only worth a group with 2+ tasks)
    groups: list[tuple[str, str | None]] = [(grid.label(t), t) for t in grid.tasks] + (
        [(grid.label(None), None)] if len(grid.tasks) > 1 else [])
    with_gain = {"base", "ttrl"} <= set(grid.methods)
    with_share = with_gain and "leakage" in grid.methods
    columns: list[tuple[str, type]] = [("model", str)]
    for group, _ in groups:
        for metric in metrics:
            suffix = f" {metric}" if len(metrics) > 1 else ""
            columns += [(f"{group} {_method_name(m)}{suffix}", Score) for m in grid.methods]
            if with_gain:
                columns.append((f"{group} TTRL gain{suffix}", Gain))
            if with_share:
                columns.append((f"{group} share of leakage gain{suffix}", Share))
    rows = []
    for model in grid.models:
        row: list[Cell] = [model]
        for _, task in groups:
            for metric in metrics:
                if task is None:
                    scores = {m: grid.average(model, m, metric) for m in grid.methods}
                else:
                    scores = {m: grid.score(model, task, m, metric) for m in grid.methods}
                row += [scores[m] for m in grid.methods]
                if with_gain:
                    row.append(_gain(scores["ttrl"], scores["base"]))
                if with_share:
                    row.append(_share(scores["ttrl"], scores["base"], scores["leakage"]))
        rows.append(tuple(row))
    return _table("paper", metrics, columns, rows)


def _table(layout: str, metrics: tuple[str, ...], columns: list[tuple[str, type]], rows: list[tuple[Cell, ...]]) -> Table:
    return Table(layout, metrics, tuple(h for h, _ in columns), tuple(k for _, k in columns), tuple(rows))


def _long_table(grid: _Grid, metrics: tuple[str, ...]) -> Table:
    columns: list[tuple[str, type]] = [("model", str), ("task", str), ("method", str)]
    for metric in metrics:
        suffix = f" {metric}" if len(metrics) > 1 else ""
        columns += [(metric, Score), (f"gain{suffix}", Gain), (f"share of leakage gain{suffix}", Share)]
    rows = []
    for model in grid.models:
        for task in grid.tasks:
            for method in grid.methods:
                if (model, task, method) not in grid.cells:
                    continue
                row: list[Cell] = [model, grid.label(task), _method_name(method)]
                for metric in metrics:
                    score = grid.score(model, task, method, metric)
                    base = grid.score(model, task, "base", metric)
                    leakage = grid.score(model, task, "leakage", metric)
                    row += [
                        score,
                        _gain(score, base) if method != "base" else None,
                        # leakage's own share is 100% by definition: left blank
                        _share(score, base, leakage) if method not in ("base", "leakage") else None,
                    ]
                rows.append(tuple(row))
    return _table("long", metrics, columns, rows)


# --- output formats ---------------------------------------------------------------------


def markdown_escape(text: str) -> str:
    """A record's string as literal text in GitHub markdown: no HTML, emphasis, links, math ($) or
    table breaks; a newline would end the row (a fake row could follow), so it becomes <br>."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]|$~":
        text = text.replace(ch, "\\" + ch)
    text = re.sub(r"\r\n|[\r\n\u2028\u2029]", "<br>", text)
    return _CONTROL.sub(" ", text)


def plain_line(text: str) -> str:
    """LaTeX and HTML cells: control characters (newlines included) as spaces."""
    return _CONTROL.sub(" ", text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...), =cmd|...).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(text: str) -> str:
    """A text cell for CSV: a leading apostrophe keeps a spreadsheet from reading it as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _tabulate(table: Table, tablefmt: str, escape) -> str:
    rows = [[escape(c) if isinstance(c, str) else cell_text(c) for c in row] for row in table.rows]
    colalign = ["left" if kind is str else "right" for kind in table.kinds]
    return tabulate(rows, [escape(h) for h in table.headers], tablefmt=tablefmt, colalign=colalign, disable_numparse=True)


def _num(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _csv(table: Table) -> str:
    """One number per column (mean and stderr apart, in points), so spreadsheets read the values."""
    headers: list[str] = []
    for header, kind in zip(table.headers, table.kinds):
        if kind is Score:
            headers += [header, f"{header} stderr"]
        elif kind is Gain:
            headers += [f"{header} (points)", f"{header} (%)"]
        elif kind is Share:
            headers.append(f"{header} (%)")
        elif kind is PairedGain:
            headers += [f"{header} (points)", f"{header} (paired stderr)"]
        else:
            headers.append(header)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([csv_text(h) for h in headers])
    for row in table.rows:
        values: list[object] = []
        for kind, cell in zip(table.kinds, row):
            if kind is Score:
                values += ["", ""] if cell is None else [_num(cell.mean), _num(cell.stderr)]
            elif kind is Gain:
                values += ["", ""] if cell is None else [_num(cell.points), _num(cell.percent)]
            elif kind is Share:
                values.append("" if cell is None else _num(100 * cell.fraction))
            elif kind is PairedGain:
                values += ["", ""] if cell is None else [_num(cell.points), _num(cell.stderr)]
            else:
                values.append(csv_text(cell) if isinstance(cell, str) else cell)
        writer.writerow(["" if v is None else v for v in values])
    return out.getvalue()


def _json(table: Table) -> dict:
    """Rows as objects keyed by column; scores {mean, stderr} and gains {points, percent} in points,
    shares {share} as fractions, paired gains {points, stderr, questions} in points, missing cells null."""

    def cell(c: Cell) -> object:
        if isinstance(c, Score):
            return {"mean": _num(c.mean), "stderr": _num(c.stderr)}
        if isinstance(c, Gain):
            return {"points": _num(c.points), "percent": _num(c.percent)}
        if isinstance(c, Share):
            return {"share": _num(c.fraction)}
        if isinstance(c, PairedGain):
            return {"points": _num(c.points), "stderr": _num(c.stderr), "questions": c.questions}
        return c

    return {
        "layout": table.layout,
        "metrics": list(table.metrics),
        "units": "percentage points",
        "columns": list(table.headers),
        "rows": [{h: cell(c) for h, c in zip(table.headers, row)} for row in table.rows],
    }


# The output formats registry: name -> renderer of a table (None: the HTML page, which render_page builds
# from the records). The CLI's --format choices come from it.
FORMATS: dict[str, Callable[[Table], str] | None] = {
    "markdown": lambda table: _tabulate(table, "pipe", markdown_escape) + "\n",
    "latex": lambda table: _tabulate(table, "latex_booktabs", plain_line) + "\n",  # tabulate escapes LaTeX specials
    "csv": lambda table: _csv(table),
    "html": None,
    "json": lambda table: json.dumps(_json(table), indent=2, ensure_ascii=False) + "\n",
}
