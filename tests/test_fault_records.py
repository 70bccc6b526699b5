"""Fault suite, part 2: records never overwrite another model's, and names tell models apart."""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from ttrl_bench.errors import UsageError
from ttrl_bench.measure.records import QuestionScore, Record, load_record, publish_record, write_record
from ttrl_bench.pipeline.config import default_model_name


def rec(model: str, fingerprint: str = "fp-a", method: str = "base", mean: float = 0.5) -> Record:
    return Record(
        model=model, model_fingerprint=fingerprint, task="synth_near", data_fingerprint="data-1", method=method,
        metrics={"pass@1": {"mean": mean, "stderr": 0.1}}, per_question=[QuestionScore("q0", 4, 2, True)],
        sampling={"n": 4},
    )


def test_names_that_slug_alike_get_their_own_files(tmp_path):
    a = publish_record(rec("org/model"), tmp_path)
    b = publish_record(rec("org-model"), tmp_path)
    assert a != b and {load_record(a).model, load_record(b).model} == {"org/model", "org-model"}


def test_same_name_other_weights_is_refused_not_overwritten(tmp_path):
    first = publish_record(rec("mine", "fp-a", mean=0.5), tmp_path)
    before = first.read_bytes()
    with pytest.raises(UsageError, match="another model fingerprint"):
        publish_record(rec("mine", "fp-b", mean=0.9), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [first.name] and first.read_bytes() == before


def test_the_same_model_remeasured_replaces_its_record_also_under_an_old_file_name(tmp_path):
    old = rec("mine", mean=0.5)
    legacy = tmp_path / "mine__synth_near__base.json"  # the file name records had before identities
    write_record(old, tmp_path).rename(legacy)
    new = publish_record(rec("mine", mean=0.75), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [new.name]
    assert load_record(new).metrics["pass@1"]["mean"] == 0.75


def test_a_foreign_file_under_the_records_name_is_not_overwritten(tmp_path):
    r = rec("mine")
    (tmp_path / r.filename).write_text("my notes")
    with pytest.raises(UsageError, match="not a record"):
        publish_record(r, tmp_path)
    assert (tmp_path / r.filename).read_text() == "my notes"


def test_hostile_names_stay_inside_the_directory(tmp_path):
    for name in ("../../etc/passwd", "/abs/path", "a\nb", "..", "", "x" * 500):
        path = publish_record(rec(name, fingerprint=f"fp-{len(name)}"), tmp_path / "lb")
        assert path.parent == tmp_path / "lb" and len(path.name) < 200


@pytest.mark.parametrize("path, name", [
    ("/work/exp1/checkpoint-500", "exp1/checkpoint-500"),
    ("/work/qwen-ttrl/model", "qwen-ttrl/model"),
    ("/work/exp/final/model", "exp/final/model"),
    ("/hf/models--Qwen--Qwen2.5-Math-1.5B/snapshots/" + "0123456789abcdef" * 2 + "01234567", "Qwen/Qwen2.5-Math-1.5B"),
    ("/work/my-model-7b", "my-model-7b"),
])
def test_default_display_names_are_not_bare_generic_directory_names(path, name):
    assert default_model_name(Path(path)) == name


# --- leaderboards: hostile names through every format, mixed question sets marked --------------

HOSTILE = ["org/m\n| fake | row |", "$x^2$ <b>bold</b> *em* `code` [link](http://x)", "=HYPERLINK(\"http://x\",\"y\")",
           "+1", "-cmd", "@SUM(A1)", "a|b", "\\\\ \\ ~~strike~~"]


def hostile_records() -> list[Record]:
    return [rec(name, fingerprint=f"fp-{i}", mean=0.1 * (i + 1)) for i, name in enumerate(HOSTILE)]


def test_hostile_model_names_through_all_five_formats(tmp_path):
    import csv
    import io
    import json as json_

    from ttrl_bench.report.leaderboard import FORMATS, render_leaderboard

    records = hostile_records()
    for fmt in FORMATS:
        text = render_leaderboard(records, fmt, layout="long", record_dir=tmp_path)
        if fmt == "markdown":
            lines = text.strip().splitlines()
            assert len(lines) == 2 + len(HOSTILE), lines  # header, rule, one line per record: no fake row
            for line in lines[2:]:
                cells = [c for c in re.split(r"(?<!\\)\|", line)][1:-1]
                assert len(cells) == 6, line  # model, task, method, score, gain, share: no extra column
            assert "$x^2$" not in text and "\\$x^2\\$" in text and "<b>" not in text
        elif fmt == "csv":
            rows = list(csv.reader(io.StringIO(text)))
            models = [row[0] for row in rows[1:]]
            assert not any(m.startswith(("=", "+", "-", "@")) for m in models), models
            assert "'=HYPERLINK(\"http://x\",\"y\")" in models and len(rows) == 1 + len(HOSTILE)
        elif fmt == "json":
            names = {row["model"] for row in json_.loads(text)["rows"]}
            assert names == set(HOSTILE)  # JSON keeps the exact names; its own escaping is enough
        elif fmt == "html":
            assert "<b>bold</b>" not in text and "&lt;b&gt;bold&lt;/b&gt;" in text
        elif fmt == "latex":
            assert "\n| fake" not in text and "$x^2$" not in text


def test_columns_mixing_question_sets_are_marked(tmp_path):
    from ttrl_bench.report.leaderboard import MIXED_MARK, render_leaderboard

    same = [rec("a"), rec("b", fingerprint="fp-b")]
    assert MIXED_MARK not in render_leaderboard(same, "markdown")
    mixed = [rec("a"), replace(rec("b", fingerprint="fp-b"), data_fingerprint="data-2")]
    assert f"synth\\_near{MIXED_MARK}" in render_leaderboard(mixed, "markdown")
    assert f"synth_near{MIXED_MARK}" in render_leaderboard(mixed, "csv", layout="long")


def test_plots_outside_the_records_directory_are_not_embedded(tmp_path):
    from ttrl_bench.report.leaderboard import render_leaderboard

    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
    (tmp_path / "outside.png").write_bytes(png)
    inside = tmp_path / "lb"
    (inside / "plots").mkdir(parents=True)
    (inside / "plots" / "ok.png").write_bytes(png)
    (inside / "plots" / "link.png").symlink_to(tmp_path / "outside.png")
    r = replace(rec("m"), plots=["plots/ok.png", "../outside.png", str(tmp_path / "outside.png"), "plots/link.png"])
    page = render_leaderboard([r], "html", record_dir=inside)
    import base64

    # The page draws its own figures from the records' numbers; it never embeds a file a record names,
    # so no path in a record (outside the records directory, or a symlink out of it) reaches the page.
    assert base64.b64encode(png).decode() not in page


@pytest.mark.parametrize("name, value, problem", [
    ("metrics", "pass", "'metrics' must be an object"),
    ("metrics", {"pass@1": {"mean": "0.5", "stderr": 0.1}}, "finite numbers"),
    ("metrics", {"pass@1": {"mean": float("nan"), "stderr": 0.1}}, "finite numbers"),
    ("extra", {"best_step_pass@1": "0.9"}, r"extra\['best_step_pass@1'\] must be a number or null"),
    ("extra", {"best_step": 2.5}, r"extra\['best_step'\] must be an integer or null"),
    ("extra", {"final_step": True}, r"extra\['final_step'\] must be an integer"),
    ("extra", {"vote_baseline": [1]}, r"extra\['vote_baseline'\] must be an object"),
])
def test_record_fields_are_type_checked_on_load(tmp_path, name, value, problem):
    import json as json_

    path = write_record(rec("m"), tmp_path)
    data = json_.loads(path.read_text())
    data[name] = value
    path.write_text(json_.dumps(data))
    with pytest.raises(UsageError, match=problem):
        load_record(path)


def test_record_extra_loads_known_keys_null_where_allowed_and_unknown_keys_as_they_are(tmp_path):
    extra = {"best_step": None, "best_step_pass@1": 1, "collapse_warning": None, "final_step": 4,
             "from_a_later_version": {"anything": [1, 2]}}
    path = write_record(replace(rec("m"), extra=extra), tmp_path)
    assert load_record(path).extra == extra
    assert write_record(load_record(path), tmp_path / "again").read_bytes() == path.read_bytes()


def test_the_shipped_leaderboard_records_load_unchanged(tmp_path):
    from ttrl_bench.measure.records import load_records

    shipped = Path(__file__).resolve().parent.parent / "leaderboards"
    for path in sorted(shipped.glob("*.json")):
        record = load_records(path)[0]
        assert record.to_json() == path.read_text(), path.name
