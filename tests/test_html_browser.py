"""The HTML leaderboard in real headless Chromium at 1280 px: what a reader sees.

A probe script is put at the top of a copy of the page: it replaces window.alert (so any
script smuggled in through a record would be caught), waits for the page to load, measures
sideways overflow, checks the figures decoded, clicks column headers and the task filter
through the page's own handlers, and writes what it saw as JSON into the DOM, which
--dump-dom prints. Needs /usr/bin/chromium (Debian's chromium package; the install script
provides it).
"""
from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import pytest

from ttrl_bench.measure.records import QuestionScore, Record
from ttrl_bench.report.leaderboard import render_leaderboard

CHROMIUM = Path("/usr/bin/chromium")
WIDTH = 1280
MARKUP = '<script>alert("x")</script> & <b>bold</b>'
LONG_NAME = "an-organisation/" + "averyveryverylongmodelnamewithoutanyspaces" * 4  # must wrap, not scroll

PROBE = """<script>
window.__alerts = [];
window.alert = function (message) { window.__alerts.push(String(message)); };
window.addEventListener("load", function () {
  var seen = {innerWidth: window.innerWidth, docScrollWidth: document.documentElement.scrollWidth};
  seen.overflowing = [];
  Array.prototype.forEach.call(document.querySelectorAll("*"), function (el) {
    var ox = getComputedStyle(el).overflowX;
    var scrolls = ox !== "visible" || el === document.documentElement || el === document.body;
    if (scrolls && el.scrollWidth > el.clientWidth) {
      seen.overflowing.push(el.tagName + "." + el.className + " " + el.scrollWidth + ">" + el.clientWidth);
    }
  });
  var section = document.querySelector('section.task[data-task="aime24"]');
  var table = section.querySelector("table.board");
  var headerCells = table.tHead.rows[0].cells;
  var headers = Array.prototype.map.call(headerCells, function (c) { return c.textContent.trim(); });
  function column(name) {
    var i = headers.indexOf(name);
    return Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[i].textContent.trim(); });
  }
  function click(name) { headerCells[headers.indexOf(name)].click(); }
  seen.headers = headers;
  seen.sticky = getComputedStyle(headerCells[0]).position + " " + getComputedStyle(document.querySelector(".bar")).position;
  seen.initial = {models: column("model"), methods: column("method")};
  click("pass@1");
  seen.first = {models: column("model"), methods: column("method"), values: column("pass@1"),
                aria: headerCells[headers.indexOf("pass@1")].getAttribute("aria-sort")};
  click("pass@1");
  seen.second = {values: column("pass@1"), aria: headerCells[headers.indexOf("pass@1")].getAttribute("aria-sort")};
  click("model");
  seen.byModel = column("model");
  seen.links = Array.prototype.map.call(table.querySelectorAll("a"), function (a) { return a.href; });
  seen.images = Array.prototype.map.call(document.images, function (im) {
    return {task: im.closest("section").getAttribute("data-task"), kind: im.closest("figure").getAttribute("data-kind"),
            src: im.src.slice(0, 22), complete: im.complete, width: im.naturalWidth, shown: im.clientWidth};
  });
  seen.captions = Array.prototype.map.call(document.querySelectorAll("figcaption"), function (c) { return c.innerText; });
  function visibleTasks() {
    return Array.prototype.filter.call(document.querySelectorAll("section.task"), function (s) {
      return s.offsetParent !== null;
    }).map(function (s) { return s.getAttribute("data-task"); });
  }
  var filter = document.getElementById("task-filter");
  seen.filterOptions = Array.prototype.map.call(filter.options, function (o) { return o.value; });
  seen.visibleAll = visibleTasks();
  filter.value = "math500";
  filter.dispatchEvent(new Event("change"));
  seen.visibleMath = visibleTasks();
  seen.textMath = document.body.innerText;
  filter.value = "";
  filter.dispatchEvent(new Event("change"));
  seen.visibleAgain = visibleTasks();
  seen.alerts = window.__alerts;
  seen.scripts = document.scripts.length;
  seen.boldElements = document.getElementsByTagName("b").length;
  seen.text = document.body.innerText;
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(seen);
  document.body.appendChild(out);
});
</script>"""

STEPS = [0, 25, 50]


def _record(model: str, task: str, method: str, cs: list[int], *, levels=None, report: str = "") -> Record:
    mean = sum(cs) / (16 * len(cs))
    extra, curve, signals = {}, {}, {}
    if method != "base":
        curve = {"step": STEPS, "pass@1": [0.4, (0.4 + mean) / 2, mean], "pass@1_stderr": [0.02] * 3,
                 "maj@16": [0.5, 0.6, 0.7], "maj@16_stderr": [0.03] * 3}
        signals = {"step": list(range(1, 51)), "label_accuracy": [0.5 + 0.5 * (s % 2) for s in range(50)],
                   "majority_ratio": [0.6] * 50}
        extra = {"final_step": 50, "label_accuracy_first": 0.8, "label_accuracy_last": 0.6}
    return Record(
        model=model, model_fingerprint="mf", task=task, data_fingerprint=f"data-{task}", method=method,
        metrics={"pass@1": {"mean": mean, "stderr": 0.02}, "maj@16": {"mean": 0.6, "stderr": 0.03}},
        per_question=[QuestionScore(f"q{i}", 16, c, c > 8, levels[i] if levels else None) for i, c in enumerate(cs)],
        sampling={"n": 16}, extra=extra, curve=curve, signals=signals, report=report,
    )


def _records() -> list[Record]:
    report = "reports/alpha__aime24/report.md"
    records = [
        _record("Alpha", "aime24", "base", [4, 4], report=report), _record("Alpha", "aime24", "ttrl", [8, 6], report=report),
        _record("Alpha", "aime24", "leakage", [12, 12], report=report),
        _record(MARKUP, "aime24", "base", [2, 2]), _record(MARKUP, "aime24", "ttrl", [14, 14]),
        _record(LONG_NAME, "aime24", "base", [6, 6]),  # no TTRL result
    ]
    levels = ["Level 1", "Level 2", "Level 3"]
    records += [_record("Alpha", "math500", m, cs, levels=levels)
                for m, cs in (("base", [8, 4, 2]), ("ttrl", [12, 8, 4]), ("leakage", [16, 12, 8]))]
    return records


@pytest.fixture(scope="module")
def seen(tmp_path_factory) -> dict:
    assert CHROMIUM.exists(), "Chromium is required for this test: apt-get install -y chromium"
    root = tmp_path_factory.mktemp("html")
    (root / "reports" / "alpha__aime24").mkdir(parents=True)
    (root / "reports" / "alpha__aime24" / "report.md").write_text("# report\n")
    site = root / "site"
    site.mkdir()
    page = render_leaderboard(_records(), "html", metrics=("pass@1", "maj@16"), record_dir=root, page_dir=site)
    probed = site / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={root / 'profile'}",
         f"--window-size={WIDTH},900", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert match, f"the probe did not report (exit {result.returncode}): {result.stderr[-2000:]}"
    seen = json.loads(html.unescape(match.group(1)))
    seen["root"] = str(root)
    return seen


def test_nothing_scrolls_sideways_at_1280_px(seen):
    assert seen["innerWidth"] == WIDTH  # the probe really ran at the width under test
    assert seen["docScrollWidth"] <= WIDTH
    assert seen["overflowing"] == []
    assert LONG_NAME in seen["text"].replace("\n", "")  # wrapped, not cut


def test_every_figure_is_an_embedded_png_that_decodes(seen):
    kinds = sorted((im["task"], im["kind"]) for im in seen["images"])
    assert kinds == sorted([("aime24", "curves"), ("aime24", "pass_at_k"), ("aime24", "labels"),
                            ("math500", "curves"), ("math500", "pass_at_k"), ("math500", "levels"),
                            ("math500", "labels")])
    for im in seen["images"]:
        assert im["src"] == "data:image/png;base64,"
        assert im["complete"] and im["width"] == 660  # 3.3 in at 200 dpi, decoded
        assert 300 <= im["shown"] <= 660


def test_captions_are_words_with_the_numbers(seen):
    curves = [c for c in seen["captions"] if "against training step" in c]
    assert any("TTRL: pass@1 25.0 → 43.8" in c and "% of the leakage gain" in c and "label accuracy 80% → 60%" in c
               for c in curves)


def test_header_and_bar_are_sticky_and_rows_are_grouped_by_task(seen):
    assert seen["sticky"] == "sticky sticky"
    assert seen["headers"][:3] == ["model", "method", "pass@1"] and "task" not in seen["headers"]
    # models in name order ("<" sorts before letters), each model's methods in the registry's order
    assert seen["initial"]["models"] == [MARKUP, MARKUP, "Alpha", "Alpha", "Alpha", LONG_NAME]
    assert seen["initial"]["methods"] == ["base", "TTRL", "base", "TTRL", "leakage", "base"]


def test_clicking_a_numeric_header_sorts_best_first_then_reverses(seen):
    assert seen["first"]["values"] == ["87.5 ± 2.0", "75.0 ± 2.0", "43.8 ± 2.0", "37.5 ± 2.0", "25.0 ± 2.0",
                                       "12.5 ± 2.0"]
    assert seen["first"]["models"][0] == MARKUP and seen["first"]["aria"] == "descending"
    assert seen["second"]["values"] == list(reversed(seen["first"]["values"]))
    assert seen["second"]["aria"] == "ascending"
    assert seen["byModel"] == sorted(seen["byModel"], key=str.lower)


def test_the_task_filter_shows_one_task_and_all_again(seen):
    assert seen["filterOptions"] == ["", "aime24", "math500"]
    assert seen["visibleAll"] == ["aime24", "math500"]
    assert seen["visibleMath"] == ["math500"]
    assert MARKUP not in seen["textMath"]
    assert seen["visibleAgain"] == ["aime24", "math500"]


def test_rows_link_their_run_report(seen):
    want = (Path(seen["root"]) / "reports" / "alpha__aime24" / "report.md").as_uri()
    assert seen["links"] == [want] * 3  # Alpha's base, TTRL, leakage; the other models have none


def test_a_model_name_with_markup_shows_as_text_and_runs_nothing(seen):
    assert MARKUP in seen["text"]
    assert seen["alerts"] == []
    assert seen["boldElements"] == 0
    assert seen["scripts"] == 2  # the probe and the page's own script, nothing from the records
