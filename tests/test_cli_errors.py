"""Bad input to ``ttrl-bench eval``: exit code 2, one line on stderr naming what is wrong, nothing overwritten.

Each case runs the real command in a subprocess (``python -m ttrl_bench.cli``), so
the exit code and the whole of stderr are what a user sees. Every case points
``--out`` at an earlier, finished run directory (or at a fresh path where that is
the point of the case) and checks afterwards that the earlier run's files are
byte-for-byte what they were and that no new directory appeared.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, subprocess_env

ERROR_PREFIX = "ttrl-bench: error: "




def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ttrl_bench.cli", *args], cwd=cwd, env=subprocess_env(**env),
                          capture_output=True, text=True, timeout=300)


def snapshot(directory: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every entry below ``directory``: a file's bytes and modification time (ns); None for a directory."""
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
            for p in sorted(directory.rglob("*"))}


def assert_one_error_line(proc: subprocess.CompletedProcess, *named: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{proc.stderr}"
    line = lines[0]
    assert line.startswith(ERROR_PREFIX), line
    for text in named:
        assert text in line, f"{text!r} not named in: {line}"
    assert proc.stdout == "", proc.stdout
    return line


@pytest.fixture(scope="module")
def earlier_run(tiny_model_dir, tmp_path_factory) -> tuple[Path, dict]:
    """A finished run (-n 2, 2 questions) in its own working directory, and a snapshot of its files."""
    cwd = tmp_path_factory.mktemp("errors")
    out = cwd / "earlier"
    proc = run(["eval", "--task", "synth_near", "--model", str(tiny_model_dir), "--limit", "2", "-n", "2",
                "--out", str(out), "--leaderboard", str(cwd / "lb")], cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {"config.json", "samples.jsonl", "metrics.json", "grades.jsonl", "records"} <= {p.name for p in out.iterdir()}
    return out, snapshot(cwd)


@pytest.fixture
def workdir(earlier_run) -> Path:
    return earlier_run[0].parent


@pytest.fixture(autouse=True)
def nothing_changed(request):
    """After each case: the earlier run, its leaderboard and its working directory are exactly as they were."""
    yield
    if "earlier_run" in request.fixturenames:
        out, before = request.getfixturevalue("earlier_run")
        assert snapshot(out.parent) == before


def base_args(model: Path | str, out: Path, *extra: str, task: str = "synth_near") -> list[str]:
    return ["eval", "--task", task, "--model", str(model), "--limit", "2", "-n", "2", "--out", str(out),
            "--leaderboard", str(out.parent / "lb"), *extra]


def test_unknown_task(earlier_run, workdir, tiny_model_dir):
    line = assert_one_error_line(run(base_args(tiny_model_dir, earlier_run[0], task="no_such_task"), workdir),
                                 "--task", "'no_such_task'")
    assert "synth_near" in line and "gsm8k" in line  # the known tasks are listed


def test_malformed_yaml_in_the_tasks_directory(earlier_run, workdir, tiny_model_dir, tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "broken.yaml").write_text("name: broken\nsource: [builtin, synthetic\nfields: {}\n")
    proc = run(base_args(tiny_model_dir, earlier_run[0], task="broken"), workdir, TTRL_BENCH_TASKS=str(tasks))
    assert_one_error_line(proc, "broken.yaml", "not valid YAML", "line ")


def test_malformed_yaml_given_as_a_task_path(earlier_run, workdir, tiny_model_dir, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ngeneration:\n  n: 4\n   temperature: 1.0\n")  # bad indentation
    assert_one_error_line(run(base_args(tiny_model_dir, earlier_run[0], task=str(path)), workdir),
                          "mine.yaml", "not valid YAML")


def test_task_file_with_a_bad_field(earlier_run, workdir, tiny_model_dir, tmp_path):
    text = (REPO / "tasks" / "synth_near.yaml").read_text().replace("n: 16", "n: 0")
    path = tmp_path / "synth_near.yaml"
    path.write_text(text)
    assert_one_error_line(run(base_args(tiny_model_dir, earlier_run[0], task=str(path)), workdir),
                          "synth_near.yaml", "generation.n")


def test_data_file_missing_the_question_field(earlier_run, workdir, tiny_model_dir, tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"id": "a", "problem": "1+2=", "answer": "3", "digits": 1}) + "\n")
    line = assert_one_error_line(run(base_args(tiny_model_dir, earlier_run[0], "--data", str(data)), workdir),
                                 "rows.jsonl", "'question' (fields.question)", "--fields question=COLUMN")
    assert "problem" in line  # the fields that are there


@pytest.mark.parametrize("extra, named", [
    (["--grading-budget", "0"], "--grading-budget"),
    (["--grading-timeout", "0"], "--grading-timeout"),
    (["--fields", "colour=red"], "--fields"),
])
def test_bad_grading_budget_and_fields_flags(earlier_run, workdir, tiny_model_dir, extra, named):
    assert_one_error_line(run(base_args(tiny_model_dir, earlier_run[0], *extra), workdir), named)


def test_a_one_off_file_runs_with_fields_mapping_and_records_its_prompts(tiny_model_dir, tmp_path):
    data = tmp_path / "oneoff.jsonl"
    data.write_text("".join(json.dumps({"problem": p, "solution": a}) + "\n" for p, a in [("12+34=", "46"), ("1+2=", "3")]))
    out = tmp_path / "out"
    proc = run(["eval", "--task", "synth_near", "--model", str(tiny_model_dir), "-n", "2", "--data", str(data),
                "--fields", "question=problem,answer=solution,id=,meta=", "--grading-budget", "10",
                "--grading-timeout", "2", "--out", str(out), "--no-leaderboard"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((out / "config.json").read_text())["request"]["grading_timeout"] == 2.0
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [r.get("prompt") for r in rows] == ["12+34=", None, "1+2=", None]


def test_model_path_that_does_not_exist(earlier_run, workdir):
    missing = workdir / "no-such-model"
    assert_one_error_line(run(base_args(missing, earlier_run[0]), workdir), "--model", str(missing))
    assert not missing.exists()


def test_model_directory_without_a_model(earlier_run, workdir, tmp_path):
    """An existing directory that holds no model: refused before a run directory is made."""
    empty = tmp_path / "empty-model"
    empty.mkdir()
    fresh = tmp_path / "fresh-out"
    assert_one_error_line(run(base_args(empty, fresh), workdir), "--model", "empty-model", "config.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty-model"]  # no run directory, no leaderboard


@pytest.mark.parametrize("flag, value, named", [("-n", "0", "-n"), ("--limit", "0", "--limit"),
                                                 ("-n", "-3", "-n")])
def test_non_positive_counts(earlier_run, workdir, tiny_model_dir, flag, value, named):
    args = base_args(tiny_model_dir, earlier_run[0])
    args[args.index(flag) + 1] = value
    line = assert_one_error_line(run(args, workdir), named)
    assert value in line


def test_out_holding_a_run_of_another_config(earlier_run, workdir, tiny_model_dir):
    """Same task, model and questions, but -n 4 instead of 2: the earlier run is refused, not mixed or replaced."""
    args = base_args(tiny_model_dir, earlier_run[0])
    args[args.index("-n") + 1] = "4"
    line = assert_one_error_line(run(args, workdir), "--out", str(earlier_run[0]))
    assert "sampling" in line, f"the message should name what differs (the sampling parameters): {line}"


def test_out_holding_a_run_of_another_seed(earlier_run, workdir, tiny_model_dir):
    line = assert_one_error_line(run(base_args(tiny_model_dir, earlier_run[0], "--seed", "7"), workdir),
                                 "--out", str(earlier_run[0]), "sampling")
    assert "'seed': 7" in line


def test_out_that_is_not_a_run_directory(earlier_run, workdir, tiny_model_dir, tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert_one_error_line(run(base_args(tiny_model_dir, other), workdir), "--out", "notes")
    assert [p.name for p in other.iterdir()] == ["keep.txt"] and (other / "keep.txt").read_text() == "mine"


def test_rerunning_the_earlier_command_is_not_an_error(earlier_run, tiny_model_dir, tmp_path):
    """The control: the same command on a copy of the earlier run resumes it (nothing left to do), exit 0."""
    copy = tmp_path / "earlier"
    shutil.copytree(earlier_run[0], copy)
    before = snapshot(copy)
    proc = run(base_args(tiny_model_dir, copy), tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pass@1" in proc.stdout and "maj@2" in proc.stdout
    after = snapshot(copy)
    # samples and config are never rewritten; the summaries are rewritten with the same scores
    assert after["samples.jsonl"] == before["samples.jsonl"]
    assert after["config.json"] == before["config.json"]
    assert after["metrics.json"][0] == before["metrics.json"][0]
    assert after["grades.jsonl"][0] == before["grades.jsonl"][0]
