"""The shipped tiny model: its files, its tokenizer, and the regime the synthetic tasks rely on."""
from __future__ import annotations

import json
import subprocess
import sys

from ttrl_bench.data import load_questions
from ttrl_bench.demo import EMBEDDED_MODEL
from ttrl_bench.grading import Grader
from ttrl_bench.measure.loop import measure
from ttrl_bench.sampling import make_sampler
from ttrl_bench.tasks.registry import get_task
from ttrl_bench.types import SamplingParams

from test_cli_eval import subprocess_env


def _measure(task_name: str, limit: int, n: int = 16):
    task = get_task(task_name)
    questions = load_questions(task, limit=limit)
    params = SamplingParams(n=n, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=0)
    with Grader() as grader:
        return measure(questions, lambda: make_sampler("hf", EMBEDDED_MODEL), params, answer_type=task.answer_type,
                       chat_template=False, grader=grader, progress=False)


def test_shipped_files_are_small_safetensors_with_a_recipe():
    weights = EMBEDDED_MODEL / "model.safetensors"
    assert weights.is_file() and weights.stat().st_size < 20 * 2**20
    recipe = json.loads((EMBEDDED_MODEL / "recipe.json").read_text())
    assert recipe["seed"] == 1234 and {"phase1", "phase2"} <= recipe.keys()
    config = json.loads((EMBEDDED_MODEL / "config.json").read_text())
    assert config["head_dim"] == 64  # vLLM's CPU attention refuses 16


def test_tokenizer_adds_bos_itself():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(EMBEDDED_MODEL)
    ids = tok("12+34=")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert tok.decode(ids, skip_special_tokens=True) == "12+34="


def test_near_split_answers_are_noisy_but_their_mode_is_right():
    s = _measure("synth_near", limit=40).summary.scores
    assert 0.3 <= s["pass@1"]["mean"] <= 0.8
    assert s["maj@16"]["mean"] >= s["pass@1"]["mean"] + 0.15


def test_shift_split_majority_is_often_wrong():
    near = _measure("synth_near", limit=40).summary.scores
    shift = _measure("synth_shift", limit=40).summary.scores
    assert shift["pass@1"]["mean"] < near["pass@1"]["mean"]
    assert shift["maj@16"]["mean"] <= 0.9  # the vote is an unreliable label here


def test_embedded_model_samples_with_the_vllm_backend(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ttrl_bench.cli", "eval", "--backend", "vllm", "--limit", "30", "-n", "8",
         "--out", str(tmp_path / "run"), "--no-leaderboard"],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    vllm_scores = json.loads((tmp_path / "run" / "metrics.json").read_text())["scores"]
    hf_scores = _measure("synth_near", limit=30, n=8).summary.scores
    # the same model through two backends: pass@1 agrees within noise (different random streams)
    diff = abs(vllm_scores["pass@1"]["mean"] - hf_scores["pass@1"]["mean"])
    assert diff < 4 * (vllm_scores["pass@1"]["stderr"] + hf_scores["pass@1"]["stderr"]) + 0.02
    assert vllm_scores["maj@8"]["mean"] >= 0.8
