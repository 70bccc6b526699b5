"""Questions from a task: builtin synthetic rows, local --data files (JSON, JSONL, parquet) through
the shipped tasks' field mappings, references, choice shuffling, limits, fingerprints and hub errors."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ttrl_bench.data.questions import data_fingerprint, load_questions, shuffle_choices
from ttrl_bench.errors import UsageError
from ttrl_bench.tasks.registry import DEFAULT_TASKS_DIR, Source, get_task

MATH_ROWS = [
    {"unique_id": "test/algebra/1.json", "problem": "What is $1+1$?", "answer": "2", "level": 1, "subject": "Algebra"},
    {"unique_id": "test/geometry/7.json", "problem": "Area of a unit square?", "answer": "1", "level": 3,
     "subject": "Geometry"},
    {"unique_id": "test/precalculus/3.json", "problem": "Simplify $\\frac{2}{4}$. ", "answer": "\\frac{1}{2}",
     "level": 5, "subject": "Precalculus"},
]


def task(name: str):
    return get_task(name, DEFAULT_TASKS_DIR)


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_parquet(path: Path, rows) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("split", ["near", "shift"])
def test_synthetic_tasks_give_100_sums(split):
    questions = load_questions(task(f"synth_{split}"))
    assert len(questions) == 100
    assert len({q.id for q in questions}) == 100
    digits = {"near": 3, "shift": 4}[split]
    for q in questions:
        a, b = q.prompt.removesuffix("=").split("+")
        assert q.prompt == f"{a}+{b}="  # the bare question: no instruction, no chat template
        assert len(a) == len(b) == digits
        assert q.reference == str(int(a) + int(b))
        assert q.meta == {"digits": digits}


@pytest.mark.parametrize("writer,suffix", [(write_json, ".json"), (write_jsonl, ".jsonl"), (write_parquet, ".parquet")])
def test_local_file_through_the_math500_mapping(tmp_path, writer, suffix):
    path = writer(tmp_path / f"math{suffix}", MATH_ROWS)
    questions = load_questions(task("math500"), data_path=path)
    assert [q.id for q in questions] == [r["unique_id"] for r in MATH_ROWS]
    assert [q.reference for q in questions] == ["2", "1", "\\frac{1}{2}"]
    # level kept as a string key, subject copied; the prompt is the stripped problem plus the instruction
    assert [q.meta["level"] for q in questions] == ["1", "3", "5"]
    assert questions[1].meta["subject"] == "Geometry"
    assert questions[2].prompt == (
        "Simplify $\\frac{2}{4}$.\nPlease reason step by step, and put your final answer within \\boxed{}.")


def test_the_three_formats_give_the_same_questions(tmp_path):
    prints = {
        data_fingerprint(load_questions(task("math500"), data_path=writer(tmp_path / f"m{suffix}", MATH_ROWS)))
        for writer, suffix in [(write_json, ".json"), (write_jsonl, ".jsonl"), (write_parquet, ".parquet")]
    }
    assert len(prints) == 1


def test_hf_style_json_with_a_data_key(tmp_path):
    path = write_json(tmp_path / "math.json", {"version": "1.0", "data": MATH_ROWS})
    questions = load_questions(task("math500"), data_path=path)
    assert [q.meta["level"] for q in questions] == ["1", "3", "5"]


def test_missing_question_field_names_file_field_and_row(tmp_path):
    rows = [dict(MATH_ROWS[0]), {k: v for k, v in MATH_ROWS[1].items() if k != "problem"}]
    path = write_jsonl(tmp_path / "broken.jsonl", rows)
    with pytest.raises(UsageError) as caught:
        load_questions(task("math500"), data_path=path)
    message = str(caught.value)
    assert "broken.jsonl: row 2: missing field 'problem'" in message
    assert "fields.question" in message and "\n" not in message


def test_column_missing_from_every_row(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "level"} for r in MATH_ROWS]
    path = write_parquet(tmp_path / "nolevel.parquet", rows)
    with pytest.raises(UsageError, match=r"nolevel\.parquet: missing field 'level' \(fields\.level\) of task math500"):
        load_questions(task("math500"), data_path=path)


def test_every_missing_field_is_named_at_once_with_how_to_map_columns(tmp_path):
    path = write_jsonl(tmp_path / "oneoff.jsonl", [{"q": "What is 1+1?", "sol": "2"}])
    with pytest.raises(UsageError) as caught:
        load_questions(task("math500"), data_path=path)
    message = str(caught.value)
    for column, role in [("unique_id", "id"), ("problem", "question"), ("answer", "answer"), ("level", "level")]:
        assert f"'{column}' (fields.{role})" in message
    assert "columns present: q, sol" in message and "--fields question=COLUMN,answer=COLUMN" in message
    assert "--task FILE.yaml" in message and "\n" not in message


def test_fields_flag_maps_a_one_off_file(tmp_path):
    from ttrl_bench.tasks import with_fields

    path = write_jsonl(tmp_path / "oneoff.jsonl", [{"q": "What is 1+1?", "sol": "2"}, {"q": "2+2?", "sol": "4"}])
    mapped = with_fields(task("math500"), "question=q,answer=sol,id=,level=")
    questions = load_questions(mapped, data_path=path)
    assert [(q.id, q.reference, q.meta) for q in questions] == [("0", "2", {}), ("1", "4", {})]
    assert questions[0].prompt.startswith("What is 1+1?")


@pytest.mark.parametrize(
    "mapping, message",
    [
        ("question", "is not ROLE=COLUMN"), ("question=", "is not ROLE=COLUMN"), ("colour=red", "unknown role 'colour'"),
        ("question=a,question=b", "given twice"), ("question=a,answer=a", "used for two roles"),
        ("choices=a|b", "only for choice tasks"),
    ],
)
def test_bad_fields_mappings_are_usage_errors(mapping, message):
    from ttrl_bench.tasks import with_fields

    with pytest.raises(UsageError, match=message):
        with_fields(task("math500"), mapping)


def test_metadata_columns_are_optional(tmp_path):
    amc = load_questions(task("amc23"), data_path=write_jsonl(
        tmp_path / "amc.jsonl", [{"problem": "p", "answer": 142.0}, {"problem": "q", "answer": 7.0, "url": "u2"}]))
    assert [q.meta for q in amc] == [{}, {"url": "u2"}]


def test_question_that_is_not_text(tmp_path):
    path = write_jsonl(tmp_path / "num.jsonl", [{**MATH_ROWS[0], "problem": 12}])
    with pytest.raises(UsageError, match=r"num\.jsonl: row 1: field 'problem' must be a non-empty text"):
        load_questions(task("math500"), data_path=path)


@pytest.mark.parametrize("name,content,expected", [
    ("rows.csv", "problem,answer\n", "expected a .json, .jsonl or .parquet file, got '.csv'"),
    ("bad.jsonl", '{"problem": "x"\n', "bad.jsonl: expected one JSON object per line"),
    ("bad.json", "3", "bad.json: expected a list of objects"),
    ("bad.parquet", "not parquet", "bad.parquet: expected a parquet table"),
    ("empty.jsonl", "", "empty.jsonl: the file is empty"),
])
def test_unreadable_data_files(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UsageError) as caught:
        load_questions(task("math500"), data_path=path)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_data_file_that_does_not_exist(tmp_path):
    with pytest.raises(UsageError, match=r"--data .*nothing\.json: no such file"):
        load_questions(task("math500"), data_path=tmp_path / "nothing.json")


def test_gsm8k_reference_is_the_number_after_the_marker(tmp_path):
    rows = [
        {"question": "Natalia sold 48 clips...", "answer": "She sold 48/2 = <<48/2=24>>24.\n#### 72"},
        {"question": "A big sum?", "answer": "Add them up.\n#### 1,234,567"},
        {"question": "A loss?", "answer": "It went down #### -5"},
    ]
    questions = load_questions(task("gsm8k"), data_path=write_jsonl(tmp_path / "gsm.jsonl", rows))
    assert [q.reference for q in questions] == ["72", "1234567", "-5"]
    assert [q.id for q in questions] == ["0", "1", "2"]  # no id column: the row index


def test_gsm8k_answer_without_marker_names_the_row(tmp_path):
    rows = [{"question": "q", "answer": "#### 1"}, {"question": "q2", "answer": "just 7"}]
    with pytest.raises(UsageError, match=r"gsm\.jsonl: row 2: field 'answer' has no '####'"):
        load_questions(task("gsm8k"), data_path=write_jsonl(tmp_path / "gsm.jsonl", rows))


def test_integer_references_are_canonical(tmp_path):
    # AIME stores "025"; the AMC set stores floats (142.0)
    aime = load_questions(task("aime24"), data_path=write_jsonl(
        tmp_path / "aime.jsonl", [{"id": 60, "problem": "p", "answer": "025"}, {"id": 61, "problem": "q", "answer": "204"}]))
    assert [(q.id, q.reference) for q in aime] == [("60", "25"), ("61", "204")]
    amc = load_questions(task("amc23"), data_path=write_parquet(
        tmp_path / "amc.parquet", [{"problem": "p", "answer": 142.0, "url": "u1"}, {"problem": "q", "answer": 7.0, "url": "u2"}]))
    assert [q.reference for q in amc] == ["142", "7"]
    assert amc[0].meta["url"] == "u1"


def test_non_integer_reference_for_an_integer_task(tmp_path):
    path = write_jsonl(tmp_path / "aime.jsonl", [{"id": 1, "problem": "p", "answer": "3.5"}])
    with pytest.raises(UsageError, match=r"aime\.jsonl: row 1: field 'answer' must hold an integer.*'3\.5'"):
        load_questions(task("aime24"), data_path=path)


def gpqa_rows(count: int) -> list[dict]:
    return [{"Record ID": f"rec{i}", "Question": f"Question {i}?  ", "Correct Answer": f"right {i}",
             "Incorrect Answer 1": f"wrong a{i}", "Incorrect Answer 2": f"wrong b{i}",
             "Incorrect Answer 3": f"wrong c{i}"} for i in range(count)]


def test_gpqa_reference_letter_points_at_the_correct_text(tmp_path):
    path = write_jsonl(tmp_path / "gpqa.jsonl", gpqa_rows(24))
    questions = load_questions(task("gpqa_diamond"), data_path=path)
    for i, q in enumerate(questions):
        choices = q.meta["choices"]
        assert sorted(choices) == sorted([f"right {i}", f"wrong a{i}", f"wrong b{i}", f"wrong c{i}"])
        assert choices["ABCD".index(q.reference)] == f"right {i}"
        assert f"{q.reference}) right {i}" in q.prompt
        assert q.prompt.startswith(f"Question {i}?\n\nA) {choices[0]}\nB) {choices[1]}\n")
        assert q.meta["choice_seed"] == task("gpqa_diamond").choice_seed
    # the shuffle really moves the correct answer around
    assert len({q.reference for q in questions}) >= 3


def test_gpqa_shuffle_is_deterministic_and_depends_on_the_seed(tmp_path):
    path = write_jsonl(tmp_path / "gpqa.jsonl", gpqa_rows(24))
    gpqa = task("gpqa_diamond")
    first = load_questions(gpqa, data_path=path)
    again = load_questions(gpqa, data_path=path)
    assert first == again
    reseeded = load_questions(replace(gpqa, choice_seed=gpqa.choice_seed + 1), data_path=path)
    assert [q.meta["choices"] for q in reseeded] != [q.meta["choices"] for q in first]
    # seeded per question: a --limit run shows each question exactly as the full run does
    assert load_questions(gpqa, data_path=path, limit=5) == first[:5]


def test_shuffle_choices_is_a_permutation():
    texts = ["right", "w1", "w2", "w3"]
    shuffled, correct = shuffle_choices(texts, seed=1, question_id="x")
    assert sorted(shuffled) == sorted(texts) and shuffled[correct] == "right"
    assert shuffle_choices(texts, seed=1, question_id="x") == (shuffled, correct)


def test_limit_keeps_the_first_rows(tmp_path):
    assert [q.id for q in load_questions(task("synth_near"), limit=3)] == ["near-000", "near-001", "near-002"]
    path = write_parquet(tmp_path / "m.parquet", MATH_ROWS)
    assert [q.reference for q in load_questions(task("math500"), data_path=path, limit=2)] == ["2", "1"]
    assert len(load_questions(task("math500"), data_path=path, limit=50)) == 3


@pytest.mark.parametrize("limit", [0, -1])
def test_limit_must_be_positive(limit):
    with pytest.raises(UsageError, match=f"--limit: must be an integer >= 1, got {limit}"):
        load_questions(task("synth_near"), limit=limit)


def test_duplicate_ids_are_refused(tmp_path):
    rows = [MATH_ROWS[0], {**MATH_ROWS[1], "unique_id": MATH_ROWS[0]["unique_id"]}]
    with pytest.raises(UsageError, match=r"dup\.jsonl: rows 1 and 2 share the id .*field 'unique_id'"):
        load_questions(task("math500"), data_path=write_jsonl(tmp_path / "dup.jsonl", rows))


def test_fingerprint_changes_with_a_reference_and_not_otherwise():
    questions = load_questions(task("synth_near"), limit=10)
    same = load_questions(task("synth_near"), limit=10)
    assert data_fingerprint(questions) == data_fingerprint(same)
    assert len(data_fingerprint(questions)) == 16
    changed = [*questions[:4], replace(questions[4], reference="0"), *questions[5:]]
    assert data_fingerprint(changed) != data_fingerprint(questions)
    reprompted = [replace(questions[0], prompt=questions[0].prompt + " "), *questions[1:]]
    assert data_fingerprint(reprompted) != data_fingerprint(questions)
    # metadata is not part of a question's identity
    assert data_fingerprint([replace(questions[0], meta={}), *questions[1:]]) == data_fingerprint(questions)


def test_hub_offline_is_a_one_line_usage_error(monkeypatch):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # datasets reads these variables once, at import; mirror them so the test does not depend on
    # whether conftest set them before the import (otherwise the hub client retries for ~25 s)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(UsageError) as caught:
        load_questions(task("math500"))
    message = str(caught.value)
    assert "\n" not in message
    assert "HuggingFaceH4/MATH-500@6e4ed1a" in message
    assert "--data PATH" in message and "'problem'" in message


def test_unpinned_revision_refuses_the_hub_but_data_still_works(tmp_path):
    unpinned = replace(task("math500"), source=replace(task("math500").source, revision=None))
    with pytest.raises(UsageError, match=r"field 'source.revision' is not pinned.*--data PATH"):
        load_questions(unpinned)
    assert len(load_questions(unpinned, data_path=write_jsonl(tmp_path / "m.jsonl", MATH_ROWS))) == 3


def test_unpinned_revision_in_a_task_file(tmp_path):
    text = (DEFAULT_TASKS_DIR / "math500.yaml").read_text()
    text = text.replace("revision: 6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be", "revision: null")
    (tmp_path / "math500.yaml").write_text(text)
    loaded = get_task("math500", tmp_path)
    assert loaded.source == Source(split="test", hub="HuggingFaceH4/MATH-500")
    with pytest.raises(UsageError, match=r"math500\.yaml: field 'source.revision' is not pinned"):
        load_questions(loaded)
