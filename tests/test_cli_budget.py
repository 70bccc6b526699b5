"""``ttrl-bench budget`` end to end on the shipped episodes model: the run directory, the record's
budget metrics, resuming without re-sampling, ``--run`` over a run directory, and bad input."""
from __future__ import annotations

import json

import pytest

from test_cli_eval import run_cli
from ttrl_bench.demo import EPISODES_MODEL
from ttrl_bench.measure.records import load_record
from ttrl_bench.pipeline.config import EvalConfig, prepare

ARGS = ["--task", "synth_episodes", "--limit", "3", "-n", "3", "--budgets", "2,8,32", "--forced-answers", "2",
        "--no-leaderboard"]


def test_the_task_names_its_default_model():
    assert prepare(EvalConfig(task="synth_episodes", limit=1)).model_dir == EPISODES_MODEL
    assert prepare(EvalConfig(task="synth_near", limit=1)).model_dir.name == "model"


def test_budget_writes_curves_and_record_and_resumes_without_sampling(tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(["budget", *ARGS, "--out", str(out)])
    assert code == 0, stderr
    [bdir] = list(out.glob("budget-*"))
    curves = json.loads((bdir / "curves.json").read_text())
    assert curves["grid"] == [0, 2, 8, 32] and len(curves["regret"]) == 3
    assert (bdir / "budget.png").stat().st_size > 0
    [record_path] = list((out / "records").glob("*.json"))
    record = load_record(record_path)
    assert {"pass@1", "budget-acc", "regret", "oracle-regret", "tokens-to-90"} <= record.metrics.keys()
    assert set(record.extra["budget"]["per_question"]["regret"]) == {"episodes-000", "episodes-001", "episodes-002"}
    assert "regret vs maj@k" in stdout
    forced = (bdir / "forced.jsonl").read_bytes()
    samples = (out / "samples.jsonl").read_bytes()
    # a rerun of the same command loads nothing new: same files, same numbers
    code, stdout2, stderr = run_cli(["budget", *ARGS, "--out", str(out)])
    assert code == 0, stderr
    assert (bdir / "forced.jsonl").read_bytes() == forced and (out / "samples.jsonl").read_bytes() == samples
    assert json.loads((bdir / "curves.json").read_text())["accuracy"] == curves["accuracy"]
    assert stdout2 == stdout
    # another budget grid is another budget directory next to it, the eval samples are reused
    code, _, stderr = run_cli(["budget", *ARGS[:-5], "--budgets", "4", "--forced-answers", "2", "--no-leaderboard",
                               "--out", str(out)])
    assert code == 0, stderr
    assert len(list(out.glob("budget-*"))) == 2 and (out / "samples.jsonl").read_bytes() == samples


@pytest.mark.parametrize("flags,needle", [
    (["--budgets", "0,4"], "--budgets"),
    (["--budgets", "four"], "--budgets"),
    (["--forced-answers", "0"], "--forced-answers"),
    (["--prover", "/no/such/model"], "--prover"),
    (["--run", "/no/such/run"], "--run"),
])
def test_bad_budget_flags_exit_2_with_one_line_and_leave_nothing(tmp_path, flags, needle):
    out = tmp_path / "run"
    code, _, stderr = run_cli(["budget", "--task", "synth_episodes", "--limit", "2", "-n", "2", "--no-leaderboard",
                               "--out", str(out), *flags])
    assert code == 2
    assert stderr.count("\n") == 1 and needle in stderr
    assert not out.exists()
