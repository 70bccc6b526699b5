"""``run --report-to tensorboard``: TRL's reporter gets our diagnostics and the test-set probe, read back
from the event files with TensorBoard's own reader. The same run writes ``--lm-eval-results`` for the
base and the adapted model (checked in test_lm_eval_results.py's format test, here for its layout)."""
from __future__ import annotations

import json

import pytest

from ttrl_bench.cli import main



def test_tensorboard_event_files_hold_the_diagnostics_and_the_probe(tiny_model_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, lm = tmp_path / "run", tmp_path / "lm"
    argv = ["run", "--model", str(tiny_model_dir), "-n", "4", "--prompts-per-step", "2", "--samples", "4",
            "--limit", "4", "--steps", "4", "--eval-every", "2", "--methods", "ttrl", "--lr", "1e-3",
            "--report-to", "tensorboard", "--lm-eval-results", str(lm), "--out", str(out), "--no-leaderboard"]
    assert main(argv) == 0
    event_dirs = {p.parent for p in (out / "ttrl" / "tensorboard").rglob("events.out.tfevents.*")}
    assert len(event_dirs) == 1
    acc = EventAccumulator(str(event_dirs.pop()))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for key in ("label_accuracy", "reward_accuracy", "majority_ratio", "reward"):
        steps = [e.step for e in acc.Scalars(f"train/{key}")]
        assert steps == [1, 2, 3, 4], (key, steps)
    log = [json.loads(line) for line in (out / "ttrl" / "train_log.jsonl").read_text().splitlines()]
    train_rows = {r["step"]: r for r in log if r["kind"] == "train" and "label_accuracy" in r}
    for e in acc.Scalars("train/label_accuracy"):
        assert e.value == pytest.approx(train_rows[e.step]["label_accuracy"], abs=1e-6)
    # the probe every --eval-every steps (the last step is measured after training, from the saved model)
    evals = [r for r in log if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [2]
    assert {"train/probe/pass@1", "train/probe/maj@4", "train/probe/majority_ratio"} <= tags
    probe = acc.Scalars("train/probe/pass@1")
    assert [(e.step, round(e.value, 6)) for e in probe] == [(2, round(evals[0]["pass@1"], 6))]
    # the probe's report is not a second "train" row of the log
    assert not any(k.startswith("probe/") for r in log for k in r)
    # lm-eval results for the base model and the adapted one
    models = sorted(p.name for p in lm.iterdir())
    assert len(models) == 2 and models[1] == models[0] + "+ttrl"
    for folder in lm.iterdir():
        assert len(list(folder.glob("results_*.json"))) == 1 and len(list(folder.glob("samples_*.jsonl"))) == 1


def test_unknown_or_missing_reporter_is_one_line_exit_2(tiny_model_dir, tmp_path, capsys):
    argv = ["run", "--model", str(tiny_model_dir), "--report-to", "tensorbored", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--report-to: unknown reporter 'tensorbored'" in err
    assert not (tmp_path / "r").exists()
