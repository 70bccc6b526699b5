"""Fault suite, part 2: records never overwrite another model's, and names tell models apart."""
from __future__ import annotations

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
