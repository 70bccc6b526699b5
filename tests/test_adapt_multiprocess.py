"""``ttrl-bench run --processes 2`` on CPU: a real two-process GRPO run (accelerate launch, gloo)
whose groups stay whole, and a layout that would split groups refused before anything starts."""
from __future__ import annotations

import json

import pytest
from conftest import subprocess_env

from ttrl_bench.adapt import train as train_module
from ttrl_bench.pipeline import run as run_module
from ttrl_bench.cli import main



def argv(model_dir, out, *extra):
    return [
        "run", "--model", str(model_dir), "--limit", "4", "-n", "4", "--samples", "4", "--votes", "4",
        "--steps", "2", "--eval-every", "1", "--methods", "ttrl", "--out", str(out), "--no-leaderboard", *extra,
    ]


@pytest.fixture
def importable(monkeypatch):
    """The launched workers import ttrl_bench whatever the working directory (the package may not be installed)."""
    monkeypatch.setenv("PYTHONPATH", subprocess_env()["PYTHONPATH"])


def test_two_cpu_processes_train_with_whole_groups(tiny_model_dir, tmp_path, importable):
    out = tmp_path / "out"
    assert main(argv(tiny_model_dir, out, "--prompts-per-step", "2", "--processes", "2")) == 0
    mdir = out / "ttrl"
    assert (mdir / "model" / "ADAPTED").exists() and (mdir / "model" / "model.safetensors").is_file()

    # Two processes really ran: the Trainer keeps one RNG state per process in a checkpoint.
    ckpt = mdir / "checkpoints" / "checkpoint-2"
    assert sorted(p.name for p in ckpt.glob("rng_state*.pth")) == ["rng_state_0.pth", "rng_state_1.pth"]

    rows = [json.loads(line) for line in (mdir / "train_log.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train" and "reward" in r]
    assert [r["step"] for r in train] == [1, 2]  # logged once, by the main process
    for r in train:
        for key in ("reward", "label_accuracy", "reward_accuracy", "majority_ratio"):
            assert 0.0 <= r[key] <= 1.0, (r["step"], key)
        # one question per process and step: 2 questions of 4 a step together, not 2 per process
        assert r["epoch"] == pytest.approx(r["step"] * 2 / 4)
    # measured on the main process at step 1 while the other waited; step 2 is the final measurement
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [1]
    rec = json.loads(next((mdir / "records").glob("*.json")).read_text())
    assert rec["extra"]["final_step"] == 2 and "label-free" in rec["extra"]["best_criterion"]


def test_a_layout_that_would_split_groups_exits_2_before_launching(tiny_model_dir, tmp_path, capsys, monkeypatch):
    def no_launch(*args, **kwargs):
        raise AssertionError("launched the training processes")

    monkeypatch.setattr(run_module, "_launch", no_launch)
    monkeypatch.setattr(train_module, "adapt", no_launch)  # run() imports it when it runs
    out = tmp_path / "out"
    # 3 questions a step cannot be shared by 2 processes without cutting a question's group
    assert main(argv(tiny_model_dir, out, "--prompts-per-step", "3", "--processes", "2")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("ttrl-bench: error: --prompts-per-step: 3 is not divisible by the 2 processes")
    assert not out.exists()  # nothing measured either
