"""hf vs vllm sampling throughput: ``python benchmarks/bench_sampling.py [--model DIR]``.

Without ``--model`` it samples from a randomly initialised model of the embedded demo
architecture (``ttrl_bench.demo.training.ARCH``) with the character tokenizer, built in
a temporary directory. Prints one table: load/engine start time, sampling time, tokens
generated, tokens per second, and each backend's speed relative to hf.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_random_demo_model(out: Path) -> Path:
    import torch

    from ttrl_bench.demo.tokenizer import build_tokenizer
    from ttrl_bench.demo.training import make_model

    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    make_model(tokenizer).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def measure(backend: str, model: Path, prompts: list[str], params, repeats: int, **kwargs) -> dict:
    from ttrl_bench.sampling import make_sampler

    start = time.perf_counter()
    sampler = make_sampler(backend, model, **kwargs)
    load = time.perf_counter() - start
    sampler.sample(prompts[:2], params)  # warm-up (first-call allocations, lazy init)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = sampler.sample(prompts, params)
        best = min(best, time.perf_counter() - start)
    tokens = sum(c.num_tokens for group in out for c in group)
    if hasattr(sampler, "close"):
        sampler.close()
    return {"backend": backend, "load_s": load, "sample_s": best, "sequences": len(prompts) * params.n,
            "tokens": tokens, "tokens_per_s": tokens / best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="local model directory (default: random demo-architecture model)")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("-n", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--hf-batch-size", type=int, default=None, help="sequences per generate call")
    ap.add_argument("--vllm-compile", action="store_true", help="let vLLM torch.compile (default: enforce_eager)")
    ap.add_argument("--backends", default="hf,vllm")
    args = ap.parse_args()

    from tabulate import tabulate

    from ttrl_bench.types import SamplingParams

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_random_demo_model(Path(tmp) / "model")
        prompts = [f"{a}+{b}=" for a, b in zip(range(101, 1000, 7), range(999, 100, -11))][: args.prompts]
        params = SamplingParams(n=args.n, temperature=1.0, top_p=1.0, max_new_tokens=args.max_new_tokens, seed=0)
        rows = []
        for backend in args.backends.split(","):
            kwargs = {"batch_size": args.hf_batch_size} if backend == "hf" else {"enforce_eager": not args.vllm_compile}
            rows.append(measure(backend, model, prompts, params, args.repeats, **kwargs))
    base = next((r["tokens_per_s"] for r in rows if r["backend"] == "hf"), None)
    for r in rows:
        r["vs_hf"] = r["tokens_per_s"] / base if base else float("nan")
    print(f"{len(prompts)} prompts x n={args.n}, max_new_tokens={args.max_new_tokens}, best of {args.repeats}")
    print(tabulate(rows, headers="keys", floatfmt=".2f"))


if __name__ == "__main__":  # required: vLLM starts its engine with multiprocessing "spawn"
    main()
