"""``ttrl-bench run --processes 2`` on CPU: a real two-process GRPO run (accelerate launch, gloo)
whose groups stay whole, whose extra votes come from each process's own rollout, whose probe
measures a shard of the questions on each process, and a layout that would split groups
refused before anything starts.

FSDP and DeepSpeed ZeRO-3 cannot run here: accelerate gives a machine without GPUs
MULTI_CPU (DDP over gloo) whatever the config says, and deepspeed is not installed. The
code under test takes the policy through TRL's ``unwrap_model_for_generation`` and the
trainer's ``summon_full_params``, the calls TRL's own rollout makes under both."""
from __future__ import annotations

import json

import pytest
from conftest import subprocess_env

from ttrl_bench.adapt import train as train_module
from ttrl_bench.pipeline import run as run_module
from ttrl_bench.cli import main



def argv(model_dir, out, *extra):
    return [
        "run", "--model", str(model_dir), "--limit", "5", "-n", "4", "--samples", "4", "--votes", "6",
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

    # Two processes really ran, and the checkpoints went once the model was saved
    adapted = json.loads((mdir / "model" / "ADAPTED").read_text())
    assert (adapted["processes"], adapted["distributed"]) == (2, "MULTI_CPU")
    assert not (mdir / "checkpoints").exists()

    rows = [json.loads(line) for line in (mdir / "train_log.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train" and "reward" in r]
    assert [r["step"] for r in train] == [1, 2]  # logged once, by the main process
    for r in train:
        for key in ("reward", "label_accuracy", "reward_accuracy", "majority_ratio"):
            assert 0.0 <= r[key] <= 1.0, (r["step"], key)
        # 6 votes a group (4 samples + 2 extra): a group's majority ratio is k/6, the logged value is
        # the main process's mean over its one group
        assert 6 * r["majority_ratio"] == pytest.approx(round(6 * r["majority_ratio"]))
        # one question per process and step: 2 questions a step together, not 2 per process; the
        # dataloader drops the incomplete last batch of 5 questions, so an epoch is 2 steps
        assert r["epoch"] == pytest.approx(r["step"] / 2)
    # step 1 probed by both processes (3 + 2 questions), gathered into one row of all 5;
    # step 2 is the final measurement
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [(r["step"], r["questions"], r["backend"]) for r in evals] == [(1, 5, "hf")]
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
