"""Fault suite, part 1: one run directory, two processes.

A run directory is owned by one process at a time (an flock via ``filelock``); a second
``eval`` on it gets one line on stderr naming the holder's pid and exit 2, and the samples
file never holds a question twice. The sample store's own descriptor lock keeps a reader from
cutting off a line another process is still writing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from filelock import lock_descriptor, unlock_descriptor

from conftest import subprocess_env
from ttrl_bench.cli import main
from ttrl_bench.measure.rundir import LOCK_FILE, open_run_dir, release_run_dir
from ttrl_bench.measure.store import SampleStore


def cli(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ttrl_bench.cli", *args], cwd=cwd, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def eval_args(model: Path, out: Path) -> list[str]:
    return ["eval", "--model", str(model), "--limit", "12", "-n", "4", "--out", str(out), "--threads", "1"]


def test_a_held_run_directory_is_refused_with_the_holders_pid(tiny_model_dir, tmp_path):
    """This test process holds the directory (as a running eval would); the CLI is refused, nothing written."""
    out = tmp_path / "run"
    assert main(eval_args(tiny_model_dir, out)) == 0  # in-process: the test's own imports are warm
    config = json.loads((out / "config.json").read_text())
    samples_before = (out / "samples.jsonl").read_bytes()
    open_run_dir(out, config["identity"], config)  # the same run: accepted, and now locked by us
    try:
        assert (out / LOCK_FILE).read_text().strip() == str(os.getpid())
        second = cli(eval_args(tiny_model_dir, out), tmp_path)
        stdout, stderr = second.communicate(timeout=300)
        assert second.returncode == 2, stderr
        assert stderr.splitlines() == [stderr.strip()] and stderr.startswith("ttrl-bench: error: --out")
        assert f"pid {os.getpid()}" in stderr and stdout == ""
        assert (out / "samples.jsonl").read_bytes() == samples_before
    finally:
        release_run_dir(out)
    assert main(eval_args(tiny_model_dir, out)) == 0  # released: the same command resumes (nothing to do)
    assert (out / "samples.jsonl").read_bytes() == samples_before


def test_two_evals_started_together_never_duplicate_a_question(tiny_model_dir, tmp_path):
    """A CI retry and a second terminal: whichever loses the race exits 2 (or resumes after the winner)."""
    out = tmp_path / "run"
    procs = [cli(eval_args(tiny_model_dir, out), tmp_path) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 2]), results
    for code, stderr in results:
        if code == 2:
            assert len(stderr.splitlines()) == 1 and "in use by another ttrl-bench process (pid " in stderr
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    per_question = Counter((r["question_id"], r["sample_index"]) for r in rows)
    assert len({q for q, _ in per_question}) == 12 and set(per_question.values()) == {1}
    assert main(eval_args(tiny_model_dir, out)) == 0  # and the directory is not poisoned


def test_the_store_never_truncates_a_line_that_is_still_being_written(tmp_path):
    path = tmp_path / "samples.jsonl"
    row = {"question_id": "q1", "sample_index": 0, "num_samples": 1, "text": "42", "num_tokens": 3,
           "finish_reason": "stop"}
    data = (json.dumps(row) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    lock_descriptor(fd)  # a writer in the middle of its append, as SampleStore.append holds it
    os.write(fd, data[:10])
    opened: dict = {}
    reader = threading.Thread(target=lambda: opened.setdefault("done", SampleStore(path).done()))
    reader.start()
    time.sleep(0.5)  # the reader is waiting for the lock, not truncating the half line
    assert path.read_bytes() == data[:10] and "done" not in opened
    os.write(fd, data[10:])
    unlock_descriptor(fd)
    os.close(fd)
    reader.join(timeout=30)
    assert set(opened["done"]) == {"q1"} and path.read_bytes() == data
