"""The leaderboard as one self-contained HTML page: inline CSS and JS, figures as PNG data URIs.

Layout: a sticky bar (title, task filter), then one section per task: its table (long
layout: one row per model and method; columns sort by clicking their header, numeric
columns best first, missing values last) and its figures (curves, pass@k, levels,
labels) with captions in words. Each row links its run's report.md when the record
names one. The page fits 1280 px without sideways scrolling: tables take the page
width and wrap long names; figures sit in a grid that wraps.

Every string from a record is escaped with html.escape before it reaches the page
(tabulate's "unsafehtml" format is given escaped cells and our own links), so a model
called "<script>..." shows as text.
"""
from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from urllib.parse import quote

from tabulate import tabulate

from ttrl_bench.adapt.methods import display_name
from ttrl_bench.measure.records import Record
from ttrl_bench.report import figure_data as D
from ttrl_bench.report.table import Table, cell_text

_CSS = """
* { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 0; color: #1a1a1a; line-height: 1.4; }
.bar { position: sticky; top: 0; z-index: 3; height: 3.2rem; display: flex; align-items: center; gap: 1.5rem;
       padding: 0 1.5rem; background: #fff; border-bottom: 1px solid #ccc; }
.bar h1 { font-size: 1.25rem; margin: 0; }
main { max-width: 76rem; margin: 0 auto; padding: 0.5rem 1.5rem 3rem; }
.caption { color: #555; }
section.task { margin-top: 1.5rem; }
section.task h2 { font-size: 1.2rem; border-bottom: 2px solid #333; padding-bottom: 0.2rem; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }  /* as wide as its content, at most the page */
th, td { padding: 0.3rem 0.5rem; border-bottom: 1px solid #ddd; text-align: left; }  /* numbers: right, by tabulate */
td { white-space: nowrap; }
td:first-child { white-space: normal; overflow-wrap: anywhere; min-width: 12rem; }  /* long names wrap, never scroll */
th { cursor: pointer; user-select: none; background: #f4f4f4; position: sticky; top: 3.2rem; z-index: 1;
     font-weight: 600; vertical-align: bottom; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
tbody tr:hover td { background: #fafae0; }
.wide { overflow-x: auto; }  /* only the "paper" layout's one wide table, on request */
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(26rem, 1fr)); gap: 1rem 1.5rem;
           margin-top: 1rem; }
figure { margin: 0; min-width: 0; }
figure img { width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.85rem; color: #333; overflow-wrap: anywhere; }
figcaption ul { margin: 0.3rem 0 0; padding-left: 1.1rem; }
"""

# Per table: clicking a header sorts that table's rows by the column. Numeric columns (flagged
# in data-numeric) compare parseFloat of the cell text ("62.3 ± 3.1" -> 62.3, "+8.1 (+105%)" -> 8.1);
# cells that are not numbers ("—") go last both ways. The task filter hides the other tasks' sections.
_JS = """
(function () {
  "use strict";
  Array.prototype.forEach.call(document.querySelectorAll("table.board"), function (table) {
    var numeric = JSON.parse(table.getAttribute("data-numeric"));
    var body = table.tBodies[0];
    var headers = table.tHead.rows[0].cells;
    var original = Array.prototype.slice.call(body.rows);
    function value(row, col) {
      var text = row.cells[col].textContent.trim();
      if (!numeric[col]) { return text.toLowerCase(); }
      var x = parseFloat(text);
      return isNaN(x) ? null : x;
    }
    function sortBy(col, descending) {
      var rows = original.slice().sort(function (a, b) {
        var x = value(a, col), y = value(b, col);
        if (x === null || y === null) {
          return (x === null) - (y === null) || original.indexOf(a) - original.indexOf(b);
        }
        var order = x < y ? -1 : (x > y ? 1 : 0);
        return (descending ? -order : order) || original.indexOf(a) - original.indexOf(b);
      });
      rows.forEach(function (row) { body.appendChild(row); });
      for (var i = 0; i < headers.length; i++) { headers[i].removeAttribute("aria-sort"); }
      headers[col].setAttribute("aria-sort", descending ? "descending" : "ascending");
    }
    Array.prototype.forEach.call(headers, function (th, col) {
      th.tabIndex = 0;
      th.title = "Sort by this column";
      function activate() {
        var current = th.getAttribute("aria-sort");
        sortBy(col, current ? current === "ascending" : numeric[col]);
      }
      th.addEventListener("click", activate);
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); activate(); }
      });
    });
  });
  var filter = document.getElementById("task-filter");
  function applyFilter() {
    Array.prototype.forEach.call(document.querySelectorAll("section.task"), function (section) {
      section.hidden = filter.value !== "" && section.getAttribute("data-task") !== filter.value;
    });
  }
  filter.addEventListener("change", applyFilter);
  applyFilter();
})();
"""


def render_page(
    tables: dict[str, Table] | Table,
    records: list[Record],
    record_dir: Path,
    *,
    page_dir: Path | None = None,
    figures: bool = True,
) -> str:
    """The whole page. ``tables``: one long table per task (rows of that task), or the one "paper" table.

    ``record_dir`` resolves records' report paths; links are relative to ``page_dir`` (the page's folder).
    """
    esc = html.escape
    groups = D.group_records(records)
    page_dir = Path(page_dir) if page_dir is not None else Path(".")
    wide = tables if isinstance(tables, Table) else None
    some = wide or next(iter(tables.values()))
    options = "".join(f'<option value="{esc(t)}">{esc(t)}</option>' for t in groups)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>ttrl-bench leaderboard</title>",
        f"<style>{_CSS}</style></head>",
        "<body>",
        '<header class="bar"><h1>ttrl-bench leaderboard</h1>'
        f'<label>Task <select id="task-filter"><option value="">all tasks</option>{options}</select></label></header>',
        "<main>",
        f'<p class="caption">{esc(", ".join(some.metrics))} in percentage points, {_what(some.layout)}. '
        f"{len(records)} records. Click a column header to sort.</p>",
    ]
    if wide is not None:
        parts.append(f'<div class="wide">{_table_html(wide, {}, record_dir, page_dir)}</div>')
    for task, task_groups in groups.items():
        parts.append(f'<section class="task" data-task="{esc(task)}"><h2>{esc(task)}</h2>')
        if wide is None and task in tables:
            rows = {(g.model, m): r for g in task_groups for m, r in g.by_method.items()}
            parts.append(_table_html(tables[task], rows, record_dir, page_dir))
        if figures:
            parts += _figures_html(task, task_groups)
        parts.append("</section>")
    parts += ["</main>", f"<script>{_JS}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _what(layout: str) -> str:
    if layout == "transfer":  # cells are gains over the base model, not scores
        return "gain over the base model on the same questions ± paired standard error"
    return ("mean ± standard error over questions; gain over the same model's base; share of the gain that RL "
            "with the true labels (leakage) reaches")


def _report_link(record: Record | None, record_dir: Path, page_dir: Path) -> str:
    """A link to the record's run report, relative to the page; "—" when there is none on disk."""
    if record is None or not record.report:
        return "—"
    target = record_dir / record.report
    if not target.is_file():
        return "—"
    href = os.path.relpath(target.resolve(), page_dir.resolve()).replace(os.sep, "/")
    return f'<a href="{html.escape(quote(href))}">report.md</a>'


def _table_html(table: Table, records: dict[tuple[str, str], Record], record_dir: Path, page_dir: Path) -> str:
    """The table with escaped cells; long tables of one task get a report column."""
    headers = list(table.headers)
    kinds = list(table.kinds)
    rows = [[html.escape(c) if isinstance(c, str) else html.escape(cell_text(c)) for c in row] for row in table.rows]
    if table.layout == "long":
        by_display = {(model, display_name(method)): r for (model, method), r in records.items()}
        headers.append("run report")
        kinds.append(str)
        for row, raw in zip(rows, table.rows):
            row.append(_report_link(by_display.get((raw[0], raw[1])), record_dir, page_dir))
    numeric = json.dumps([kind is not str for kind in kinds])
    colalign = ["left" if kind is str else "right" for kind in kinds]
    text = tabulate(rows, [html.escape(h) for h in headers], tablefmt="unsafehtml", colalign=colalign, disable_numparse=True)
    return text.replace("<table>", f'<table class="board" data-numeric="{html.escape(numeric)}">', 1)


def _figures_html(task: str, groups: list[D.TaskRecords]) -> list[str]:
    from ttrl_bench.report.figures import png_bytes, task_figures  # matplotlib only when figures are drawn
    from ttrl_bench.report.narrative import caption

    esc = html.escape
    out = ['<div class="figures">']
    for kind, drawn in task_figures(groups).items():
        uri = "data:image/png;base64," + base64.b64encode(png_bytes(drawn.figure)).decode("ascii")
        text, facts = caption(kind, task, groups)
        items = "".join(f"<li>{esc(f)}</li>" for f in facts)
        out.append(f'<figure data-kind="{esc(kind)}"><img src="{uri}" alt="{esc(kind.replace("_", " "))} of {esc(task)}">'
                   f"<figcaption>{esc(text)}{f'<ul>{items}</ul>' if items else ''}</figcaption></figure>")
    out.append("</div>")
    return out
