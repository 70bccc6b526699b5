"""Fault suite, part 3: ``run`` killed (SIGKILL) at a random step and resumed ends exactly as an
uninterrupted run with the same seed: the same train log (wall-clock fields aside), the same
adapted weights byte for byte, the same samples and metrics; and it never trains past the target.

The run spans several epochs of its 6 questions (3 steps an epoch), so a resume lands in a later
epoch, where TRL's sampler order used to restart from epoch 0.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import subprocess_env
from ttrl_bench.cli import main

STEPS = 10
# wall-clock and memory readings: the logged values that are not results
WALL_CLOCK = {"step_time", "peak_memory_gib", "seconds", "step_seconds_mean", "probe_seconds_mean"}


def run_argv(model: Path, out: Path) -> list[str]:
    return ["run", "--model", str(model), "-n", "4", "--prompts-per-step", "2", "--samples", "4", "--votes", "4",
            "--limit", "6", "--steps", str(STEPS), "--eval-every", "4", "--save-every", "1", "--lr", "1e-3",
            "--methods", "ttrl", "--seed", "7", "--out", str(out), "--threads", "1"]


def train_log(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "ttrl" / "train_log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in rows]


def results(out: Path) -> dict:
    """Everything a resumed run must reproduce exactly."""
    files = ["base/samples.jsonl", "ttrl/samples.jsonl", "ttrl/metrics.json", "ttrl/grades.jsonl",
             "ttrl/model/model.safetensors", "ttrl/model/ADAPTED"]
    found = {name: (out / name).read_bytes() for name in files}
    summary = json.loads((out / "ttrl" / "train_summary.json").read_text())
    summary["evals"] = [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in summary["evals"]]
    found["train_summary"] = {k: v for k, v in summary.items() if k not in WALL_CLOCK}
    [record] = (out / "ttrl" / "records").glob("*.json")
    rec = json.loads(record.read_text())
    found["record"] = {k: rec[k] for k in ("metrics", "per_question", "adapted_fingerprint")}
    found["record"]["extra"] = {k: v for k, v in rec["extra"].items() if k not in WALL_CLOCK}
    found["train_log"] = train_log(out)
    return found


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "whole"
    assert main(run_argv(tiny_model_dir, out)) == 0
    return out


def kill_at_step(argv: list[str], out: Path, step: int, delay: float, cwd: Path) -> int:
    """Start ``run`` in its own session, SIGKILL it (and every process it started) soon after ``step``
    is logged; returns the number of steps logged at the kill."""
    log = out / "ttrl" / "train_log.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "ttrl_bench.cli", *argv], cwd=cwd, env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while True:
            rows = log.read_text().splitlines() if log.exists() else []
            if sum('"kind": "train"' in r for r in rows) >= step:
                break
            assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before step {step}"
            assert time.monotonic() < deadline, f"step {step} not reached in 600 s"
            time.sleep(0.02)
        time.sleep(delay)  # anywhere in the next step: generation, reward, checkpoint writing
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return step


def test_killed_at_a_random_step_and_resumed_is_byte_identical(uninterrupted, tiny_model_dir, tmp_path):
    seed = int(os.environ.get("TTRL_FAULT_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    out = tmp_path / "killed"
    argv = run_argv(tiny_model_dir, out)
    step, delay = rng.randint(2, STEPS - 1), rng.uniform(0, 0.4)
    for _ in range(3):  # on an idle machine the last steps can all fit in the delay: then kill earlier
        kill_at_step(argv, out, step, delay, tmp_path)
        if not (out / "ttrl" / "model" / "ADAPTED").exists():
            break
        shutil.rmtree(out)
        step, delay = max(2, step - 3), 0.0
    assert not (out / "ttrl" / "model" / "ADAPTED").exists(), f"seed {seed}: the run finished before the kill"
    assert main(argv) == 0
    expected, got = results(uninterrupted), results(out)
    for key in expected:
        assert got[key] == expected[key], f"{key} differs after a kill at step {step} (TTRL_FAULT_SEED={seed})"


def _trained_not_saved(model: Path, out: Path, monkeypatch) -> None:
    """A run stopped after the target step's checkpoint was written, before the model was saved."""
    from ttrl_bench.adapt import train as train_module

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt  # as a Ctrl-C or a kill right after the last checkpoint

    with monkeypatch.context() as m:
        m.setattr(train_module, "save_adapted", stopped)
        assert main(run_argv(model, out)) == 130
    assert not (out / "ttrl" / "model" / "ADAPTED").exists()
    assert f"checkpoint-{STEPS}" in [p.name for p in (out / "ttrl" / "checkpoints").glob("checkpoint-*")]


def test_killed_after_the_last_checkpoint_trains_no_extra_step(uninterrupted, tiny_model_dir, tmp_path, monkeypatch):
    """The target step's checkpoint is written, the model not yet saved: the resume must not train
    step STEPS + 1 (the Trainer would finish its epoch), it must take the checkpoint's weights."""
    out = tmp_path / "late"
    _trained_not_saved(tiny_model_dir, out, monkeypatch)
    assert main(run_argv(tiny_model_dir, out)) == 0
    assert max(r["step"] for r in train_log(out)) == STEPS
    assert results(out) == results(uninterrupted)


def test_a_damaged_checkpoint_is_one_line_and_exit_2(tiny_model_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "damaged"
    _trained_not_saved(tiny_model_dir, out, monkeypatch)
    capsys.readouterr()
    weights = out / "ttrl" / "checkpoints" / f"checkpoint-{STEPS}" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated by a full disk
    assert main(run_argv(tiny_model_dir, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "damaged checkpoint" in err[0] and f"checkpoint-{STEPS}" in err[0], err
