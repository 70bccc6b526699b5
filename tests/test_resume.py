"""Resuming ``ttrl-bench eval`` after the process is killed.

The contract (evaluate.py, measure.py, store.py, sampling.prompt_seed): samples
are appended and fsync'd a question at a time as chunks finish; rerunning the
same command on the run directory keeps every finished question's lines as they
are, samples only what is missing, and ends with exactly the samples, grades and
metrics of an uninterrupted run with the same seed (chunk seeds depend on the
seed and the chunk, prompt seeds on seed + position, never on what ran before).

The run: the tiny random model of conftest, 64 synth_near questions x 16
samples: four chunks of 16 questions (measure.chunk_size_for(16)), each written
to disk when its one batched generate call returns, so there is time to kill
the process between the first chunk and the last (and the run stays short on a
busy 2-core machine; --batch-size is left at its default because chunking, not
the batch, is what decides when samples reach the disk).
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import signal
from collections import Counter
from pathlib import Path

import pytest

from conftest import complete_questions, interrupt_cli
from ttrl_bench.cli import main
from ttrl_bench.measure.loop import chunk_size_for

QUESTIONS, N = 64, 16
CHUNK = chunk_size_for(N)


def eval_args(model: Path, out: Path) -> list[str]:
    return ["eval", "--task", "synth_near", "--model", str(model), "--limit", str(QUESTIONS), "-n", str(N),
            "--seed", "3", "--out", str(out), "--no-leaderboard"]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()




def question_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """(question id, the bytes of its lines) for each question of a complete samples file, in file order."""
    blocks: list[tuple[str, bytes]] = []
    for line in data.splitlines(keepends=True):
        qid = json.loads(line)["question_id"]
        if blocks and blocks[-1][0] == qid:
            blocks[-1] = (qid, blocks[-1][1] + line)
        else:
            blocks.append((qid, line))
    return blocks


@pytest.fixture(scope="module")
def reference(tiny_model_dir, tmp_path_factory) -> Path:
    """The same command, never interrupted."""
    out = tmp_path_factory.mktemp("resume") / "reference"
    code, _, stderr = run_cli(eval_args(tiny_model_dir, out))
    assert code == 0, stderr[-2000:]
    return out


def assert_same_result_as(run_dir: Path, reference: Path) -> None:
    data = (run_dir / "samples.jsonl").read_bytes()
    ids = [qid for qid, _ in question_blocks(data)]
    assert len(ids) == QUESTIONS and Counter(ids).most_common(1)[0][1] == 1, "every question exactly once"
    assert all(len(block.splitlines()) == N for _, block in question_blocks(data))
    assert data == (reference / "samples.jsonl").read_bytes()
    assert (run_dir / "grades.jsonl").read_bytes() == (reference / "grades.jsonl").read_bytes()
    assert json.loads((run_dir / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())


def test_kill_then_rerun_keeps_finished_questions_and_matches_an_uninterrupted_run(tiny_model_dir, reference, tmp_path):
    out = tmp_path / "killed"
    samples = out / "samples.jsonl"
    # kill once the first chunk is on disk, while the next is being sampled (a kill during a chunk's
    # appends, which leaves a cut question, is the next test's case)
    code = interrupt_cli(eval_args(tiny_model_dir, out), tmp_path,
                         lambda: samples.exists() and samples.read_bytes().count(b"\n") >= CHUNK * N,
                         log=tmp_path / "stderr.log", waiting_for="the first chunk")
    assert code == -signal.SIGKILL
    assert not (out / "metrics.json").exists()
    killed = samples.read_bytes()
    end, done = complete_questions(killed)
    prefix = killed[:end]
    assert 1 <= len(done) < QUESTIONS, f"{len(done)} questions finished before the kill"
    print(f"killed with {len(done)} of {QUESTIONS} questions finished and {len(killed) - len(prefix)} bytes of tail")
    # what the killed run finished is what an uninterrupted run writes first
    assert (reference / "samples.jsonl").read_bytes().startswith(prefix)

    code, stdout, stderr = run_cli(eval_args(tiny_model_dir, out))
    assert code == 0, stderr[-2000:]
    final = samples.read_bytes()
    assert final.startswith(prefix), "a question finished before the kill was rewritten"
    # the rerun's progress bar starts at the questions already done
    assert re.search(rf"\|\s*{len(done)}/{QUESTIONS} \[", stderr), stderr[:500]
    assert_same_result_as(out, reference)
    assert f"{QUESTIONS} questions x {N} samples" in stdout


def test_kill_inside_a_chunk_resumes_mid_chunk_without_regenerating(tiny_model_dir, reference, tmp_path):
    """A kill while a chunk's questions were being appended: a finished part, a cut question and a torn line.

    The finished questions' texts are marked first, so a rerun that sampled
    them again (with the same seed it would write the same text) shows up.
    """
    blocks = question_blocks((reference / "samples.jsonl").read_bytes())
    kept = CHUNK + 5  # the first chunk and 5 questions of the second
    assert kept < 2 * CHUNK <= QUESTIONS
    marked = b"".join(
        (json.dumps({**row, "text": "kept " + row["text"]}, ensure_ascii=False) + "\n").encode()
        for _, block in blocks[:kept] for row in map(json.loads, block.splitlines())
    )
    cut = blocks[kept][1].splitlines(keepends=True)
    out = tmp_path / "cut"
    out.mkdir()
    (out / "config.json").write_bytes((reference / "config.json").read_bytes())
    (out / "samples.jsonl").write_bytes(marked + b"".join(cut[:5]) + cut[5][: len(cut[5]) // 2])

    code, _, stderr = run_cli(eval_args(tiny_model_dir, out))
    assert code == 0, stderr[-2000:]
    final = (out / "samples.jsonl").read_bytes()
    assert final.startswith(marked)
    rest = question_blocks(final[len(marked):])
    # the cut question and everything after it, drawn exactly as the uninterrupted run drew them
    assert rest == blocks[kept:]
    grades = [json.loads(line) for line in (out / "grades.jsonl").read_text().splitlines()]
    assert [g["question_id"] for g in grades] == [qid for qid, _ in blocks]
