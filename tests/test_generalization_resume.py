"""Resuming ``run --eval-tasks`` after the process is killed in the middle of the extra measurements.

The run (tiny random model, 48 questions x 16 samples, one GRPO step) is killed with SIGKILL as soon as
the adapted model's measurement on the eval task has written its first chunk. Rerunning the same
command must keep that chunk's bytes, sample only the rest, never retrain or resample what was done,
and end with exactly the samples an uninterrupted measurement of the same adapted model gives."""
from __future__ import annotations

import json
import signal
from pathlib import Path

from conftest import complete_questions, interrupt_cli
from ttrl_bench.cli import main
from ttrl_bench.adapt import train as train_module

QUESTIONS, N = 48, 16  # three chunks of 16 questions: the kill lands after the first


def texts(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        out.setdefault(row["question_id"], []).append(row["text"])
    return out


def test_killed_during_eval_task_measurement_resumes_without_redoing_anything(tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    argv = ["run", "--model", str(tiny_model_dir), "--limit", str(QUESTIONS), "-n", str(N), "--prompts-per-step", "2",
            "--samples", "4", "--votes", "4", "--steps", "1", "--eval-every", "1", "--methods", "ttrl",
            "--eval-tasks", "synth_shift", "--out", str(out), "--no-leaderboard"]
    target = out / "transfer" / "synth_shift" / "ttrl" / "samples.jsonl"
    code = interrupt_cli(argv, tmp_path, lambda: target.exists() and bool(complete_questions(target.read_bytes())[1]),
                         log=tmp_path / "stderr.txt", waiting_for="eval-task samples", within=600)
    assert code == -signal.SIGKILL
    killed = target.read_bytes()
    end, done_ids = complete_questions(killed)
    assert 0 < len(done_ids) < QUESTIONS, "the kill did not land in the middle of the eval-task measurement"
    assert not (out / "transfer" / "synth_shift" / "ttrl" / "records").exists()
    keep = {p: p.stat().st_mtime_ns for p in [out / "base" / "samples.jsonl", out / "ttrl" / "samples.jsonl",
                                               out / "ttrl" / "model" / "model.safetensors",
                                               out / "transfer" / "synth_shift" / "base" / "samples.jsonl"]}

    def no_training(spec):
        raise AssertionError("retrained after the kill")

    monkeypatch.setattr(train_module, "adapt", no_training)  # run() imports it when it runs
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in keep} == keep  # nothing finished was redone
    resumed = target.read_bytes()
    assert resumed[:end] == killed[:end]  # the finished questions' bytes are kept as they were
    ids = [json.loads(line)["question_id"] for line in resumed.splitlines()]
    assert len(ids) == QUESTIONS * N and len(set(ids)) == QUESTIONS

    rec = json.loads(next((target.parent / "records").glob("*.json")).read_text())
    base = json.loads(next((target.parent.parent / "base" / "records").glob("*.json")).read_text())
    assert (rec["task"], rec["method"], rec["adapted_on"]) == ("synth_shift", "ttrl", "synth_near")
    assert [q["id"] for q in rec["per_question"]] == [q["id"] for q in base["per_question"]]
    assert rec["adapted_fingerprint"] and rec["data_fingerprint"] == base["data_fingerprint"]
    report = (out / "report.md").read_text()
    assert any(line.startswith("| synth_near") and "| synth_shift" in line and "| ttrl" in line
               for line in report.splitlines())

    # the same adapted model measured without interruption draws exactly the same samples
    ref = tmp_path / "reference"
    assert main(["eval", "--model", str(out / "ttrl" / "model"), "--task", "synth_shift", "--limit", str(QUESTIONS),
                 "-n", str(N), "--out", str(ref), "--no-leaderboard"]) == 0
    assert texts(target) == texts(ref / "samples.jsonl")
