"""The HTML leaderboard in real headless Chromium: what a person sees, sorting by clicks, embedded plots.

A probe script is put at the top of a copy of the page: it replaces window.alert
(so any script smuggled in through a record would be caught), waits for the page
to load, reads the visible text, clicks column headers through the page's own
handlers and writes what it saw as JSON into the DOM, which --dump-dom prints.
Needs /usr/bin/chromium (Debian's chromium package; the install script provides it).
"""
from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import pytest

from ttrl_bench.report.leaderboard import render_leaderboard
from ttrl_bench.report.plots import plot_training
from ttrl_bench.measure.records import QuestionScore, Record

CHROMIUM = Path("/usr/bin/chromium")
MARKUP = '<script>alert("x")</script> & <b>bold</b>'
SORT_COLUMN = "aime24 TTRL"

PROBE = """<script>
window.__alerts = [];
window.alert = function (message) { window.__alerts.push(String(message)); };
window.addEventListener("load", function () {
  var table = document.getElementById("leaderboard");
  var headerCells = table.tHead.rows[0].cells;
  var headers = Array.prototype.map.call(headerCells, function (c) { return c.textContent.trim(); });
  function column(name) {
    var i = headers.indexOf(name);
    return Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[i].textContent.trim(); });
  }
  function click(name) { headerCells[headers.indexOf(name)].click(); }
  var seen = {headers: headers, initial: column("model")};
  click("%(column)s");
  seen.first = {models: column("model"), values: column("%(column)s"),
                aria: headerCells[headers.indexOf("%(column)s")].getAttribute("aria-sort")};
  click("%(column)s");
  seen.second = {models: column("model"), values: column("%(column)s"),
                 aria: headerCells[headers.indexOf("%(column)s")].getAttribute("aria-sort")};
  click("model");
  seen.byModel = column("model");
  seen.alerts = window.__alerts;
  seen.scripts = document.scripts.length;
  seen.boldElements = document.getElementsByTagName("b").length;
  seen.text = document.body.innerText;
  seen.images = Array.prototype.map.call(document.images, function (im) {
    return {src: im.src.slice(0, 22), complete: im.complete, width: im.naturalWidth, alt: im.alt};
  });
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(seen);
  document.body.appendChild(out);
});
</script>""" % {"column": SORT_COLUMN}


def _record(model: str, task: str, method: str, mean: float, plots=()) -> Record:
    return Record(
        model=model, model_fingerprint="mf", task=task, data_fingerprint=f"data-{task}", method=method,
        metrics={"pass@1": {"mean": mean, "stderr": 0.02}}, per_question=[QuestionScore("q0", 16, 8, True)],
        sampling={}, plots=list(plots),
    )


@pytest.fixture(scope="module")
def seen(tmp_path_factory) -> dict:
    assert CHROMIUM.exists(), "Chromium is required for this test: apt-get install -y chromium"
    root = tmp_path_factory.mktemp("html")
    log = [{"step": s, "label_accuracy": 0.5 + s / 100, "reward_mean": 0.3} for s in range(0, 20, 2)]
    log += [{"step": s, "pass@1": 0.2 + s / 50} for s in (0, 10, 20)]
    plot_training(log, root / "plots" / "ttrl.png", title="TTRL on aime24")
    records = [
        _record(MARKUP, "aime24", "base", 0.40), _record(MARKUP, "aime24", "ttrl", 0.60, ["plots/ttrl.png"]),
        _record("Alpha", "aime24", "base", 0.20), _record("Alpha", "aime24", "ttrl", 0.30, ["plots/gone.png"]),
        _record("Beta", "aime24", "base", 0.50),  # no TTRL result: its cell is missing
    ]
    page = render_leaderboard(records, "html", record_dir=root)
    probed = root / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={root / 'profile'}",
         "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert match, f"the probe did not report (exit {result.returncode}): {result.stderr[-2000:]}"
    return json.loads(html.unescape(match.group(1)))


def test_a_model_name_with_markup_shows_as_text_and_runs_nothing(seen):
    assert MARKUP in seen["initial"]  # the table's model cell
    assert MARKUP in seen["text"]  # and visible (table and plot caption)
    assert seen["alerts"] == []
    assert seen["boldElements"] == 0
    assert seen["scripts"] == 2  # the probe and the page's own sorter, nothing from the records


def test_clicking_a_numeric_header_sorts_best_first_then_reverses_with_missing_last(seen):
    assert seen["first"]["models"] == [MARKUP, "Alpha", "Beta"]
    assert seen["first"]["values"] == ["60.0 ± 2.0", "30.0 ± 2.0", "—"]
    assert seen["first"]["aria"] == "descending"
    assert seen["second"]["models"] == ["Alpha", MARKUP, "Beta"]
    assert seen["second"]["aria"] == "ascending"


def test_clicking_the_model_header_sorts_by_name(seen):
    assert seen["byModel"] == sorted([MARKUP, "Alpha", "Beta"], key=str.lower)


def test_the_run_plot_is_an_embedded_png_and_a_missing_one_is_noted(seen):
    (image,) = seen["images"]
    assert image["src"] == "data:image/png;base64,"
    assert image["complete"] and image["width"] == 700  # decoded: plot_training draws 7 in at 100 dpi
    assert "plots/gone.png (missing)" in seen["text"]
