"""The leaderboard as one self-contained HTML page: inline CSS and JS, run plots as data URIs.

Every string that comes from a record is escaped (the table by tabulate's "html"
format, the rest with html.escape), so a model called "<script>..." shows as text.
Columns sort by clicking their header (numeric columns by value, best first;
missing values always last).
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ttrl_bench.adapt.methods import METHOD_ORDER
from ttrl_bench.measure.records import Record
from ttrl_bench.report.table import Table

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1a1a1a; }
h1 { font-size: 1.5rem; }
.caption { color: #555; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 0.3rem 0.6rem; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { cursor: pointer; user-select: none; background: #f4f4f4; position: sticky; top: 0; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td:first-child { position: sticky; left: 0; background: #fff; }  /* model names stay in view on wide tables */
th:first-child { left: 0; z-index: 1; }
tbody tr:hover td { background: #fafae0; }
figure { display: inline-block; margin: 0 1rem 1rem 0; vertical-align: top; }
figure img { max-width: 36rem; border: 1px solid #ddd; }
figcaption { font-size: 0.85rem; color: #444; max-width: 36rem; }
.note { color: #8a4b00; }
"""

# Sorts the table's body rows by the clicked column. Numeric columns (flagged by the
# page generator in data-numeric) compare parseFloat of the cell text ("62.3 ± 3.1"
# -> 62.3, "+8.1 (+105%)" -> 8.1); cells that are not numbers ("—") go last both ways.
_JS = """
(function () {
  "use strict";
  var table = document.getElementById("leaderboard");
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
      var descending = current ? current === "ascending" : numeric[col];
      sortBy(col, descending);
    }
    th.addEventListener("click", activate);
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); activate(); }
    });
  });
})();
"""


def render_page(table_html: str, table: Table, records: list[Record], record_dir: Path) -> str:
    """The whole page around a tabulate "html" table of ``table``."""
    esc = html.escape
    numeric = json.dumps([kind is not str for kind in table.kinds])
    table_html = table_html.replace("<table>", f'<table id="leaderboard" data-numeric="{esc(numeric)}">', 1)
    metrics = ", ".join(table.metrics)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>ttrl-bench leaderboard</title>",
        f"<style>{_CSS}</style></head>",
        "<body>",
        "<h1>ttrl-bench leaderboard</h1>",
        f'<p class="caption">{esc(metrics)} in percentage points, mean ± standard error over questions; '
        f"layout “{esc(table.layout)}”, {len(records)} records. Click a column header to sort.</p>",
        f'<div class="scroll">{table_html}</div>',
    ]
    parts += _plots_section(records, record_dir)
    parts += [f"<script>{_JS}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _plots_section(records: list[Record], record_dir: Path) -> list[str]:
    esc = html.escape
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    ordered = sorted(records, key=lambda r: (r.model.casefold(), r.model, r.task, rank.get(r.method, len(rank)), r.method))
    figures: list[str] = []
    notes: list[str] = []
    for r in ordered:
        label = f"{r.model} · {r.task} · {r.method}"
        for rel in r.plots:
            path = record_dir / rel
            # A record names its plots; only files under the records directory are read, so a record
            # cannot pull e.g. /home/user/secret.png (or ../../anything, or a symlink out) into a page.
            if not path.resolve().is_relative_to(record_dir.resolve()):
                notes.append(f'<li class="note">plot not embedded for {esc(label)}: {esc(rel)} '
                             "(outside the records directory)</li>")
                continue
            data, problem = _read_png(path)
            if problem:
                notes.append(f'<li class="note">plot not embedded for {esc(label)}: {esc(rel)} ({esc(problem)})</li>')
                continue
            uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
            caption = label + "".join(f" · {k} {_scalar(v)}" for k, v in sorted(r.extra.items()) if _scalar(v))
            figures.append(
                f'<figure><img src="{uri}" alt="{esc(label)}: {esc(Path(rel).name)}">'
                f"<figcaption>{esc(caption)} · {esc(rel)}</figcaption></figure>"
            )
    if not figures and not notes:
        return []
    section = ["<h2>Run plots</h2>"] + figures
    if notes:
        section += ["<ul>"] + notes + ["</ul>"]
    return section


def _read_png(path: Path) -> tuple[bytes, str]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return b"", "missing"
    except OSError as exc:
        return b"", f"unreadable: {exc.strerror}"
    if not data.startswith(_PNG_SIGNATURE):
        return b"", "not a PNG file"
    return data, ""


def _scalar(v: object) -> str:
    """A record's extra value as caption text; "" for values that are not plain scalars."""
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v) if isinstance(v, (str, int)) else ""

