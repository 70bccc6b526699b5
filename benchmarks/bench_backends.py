"""hf vs vllm vs openai (local vLLM servers), same questions and samples, one run:
``python benchmarks/bench_backends.py [--model DIR] [--questions 100] [-n 16] [--out results.json]``.

Default: the embedded tiny model on the first 100 questions of ``synth_near``, 16 samples each, its
task sampling settings (T 1.0, 8 new tokens). Each backend samples the same questions through
``ttrl_bench.measure.loop.sample_all`` (the eval loop, chunks and seeds included; no store), so
the openai rows include the HTTP path. Rows: start time (model load / engine / server start),
sampling wall time, tokens generated, tokens per second, ratio of tokens/s to hf measured in the
same run, and for the openai rows how many samples are identical to the in-process vllm backend's.
``openai x2`` spreads the questions over two servers; on a 2-core machine the two servers (each
pinning itself to a core) compete with each other and this script, so expect a small ratio; the
point is that spreading works and loses nothing (identical samples).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from contextlib import ExitStack
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def run_backend(name: str, factory, questions, params) -> tuple[dict, list]:
    from ttrl_bench.measure.loop import sample_all

    start = time.perf_counter()
    sampler = factory()
    started = time.perf_counter() - start
    start = time.perf_counter()
    out = sample_all(questions, lambda: sampler, params, chat_template=False, progress=False)
    wall = time.perf_counter() - start
    tokens = sum(c.num_tokens for group in out for c in group)
    return {"backend": name, "start_s": started, "sample_s": wall, "samples": sum(map(len, out)), "tokens": tokens,
            "tokens_per_s": tokens / wall}, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="local model directory (default: the embedded tiny model)")
    ap.add_argument("--task", default="synth_near")
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("-n", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of this process (hf backend)")
    ap.add_argument("--max-concurrency", type=int, default=8, help="openai: requests in flight per server")
    ap.add_argument("--backends", default="hf,vllm,openai,openai2", help="comma-separated subset")
    ap.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args()

    import torch
    from tabulate import tabulate

    from ttrl_bench.data import load_questions
    from ttrl_bench.demo import EMBEDDED_MODEL
    from ttrl_bench.sampling import make_sampler
    from ttrl_bench.sampling.openai import ServerOptions
    from ttrl_bench.sampling.vllm_server import local_vllm_server
    from ttrl_bench.tasks import get_task

    torch.set_num_threads(args.threads)
    model = args.model or EMBEDDED_MODEL
    task = get_task(args.task)
    questions = load_questions(task, limit=args.questions)
    params = task.generation.sampling_params(seed=0)
    params = type(params)(**{**params.__dict__, "n": args.n})
    wanted = args.backends.split(",")
    rows, outputs = [], {}
    server = dict(dtype="float32" if model == EMBEDDED_MODEL else "auto",
                  extra_args=["--gpu-memory-utilization", "0.1"], served_name="bench")

    if "hf" in wanted:
        row, outputs["hf"] = run_backend("hf", lambda: make_sampler("hf", model), questions, params)
        rows.append(row)
    if "vllm" in wanted:
        row, outputs["vllm"] = run_backend("vllm", lambda: make_sampler("vllm", model, enforce_eager=True), questions, params)
        rows.append(row)
    for name, count in (("openai", 1), ("openai2", 2)):
        if name not in wanted:
            continue
        with ExitStack() as stack:
            start = time.perf_counter()
            urls = [stack.enter_context(local_vllm_server(model, **server)) for _ in range(count)]
            server_start = time.perf_counter() - start
            options = ServerOptions(base_urls=tuple(urls), model_id="bench", concurrency=args.max_concurrency)
            row, outputs[name] = run_backend(f"openai x{count}", lambda: make_sampler("openai", model, server=options),
                                             questions, params)
        row["start_s"] += server_start
        rows.append(row)

    hf_rate = next((r["tokens_per_s"] for r in rows if r["backend"] == "hf"), None)
    for r in rows:
        r["vs_hf"] = r["tokens_per_s"] / hf_rate if hf_rate else None
        key = {"openai x1": "openai", "openai x2": "openai2"}.get(r["backend"])
        if key and "vllm" in outputs:
            same = sum(a == b for ga, gb in zip(outputs[key], outputs["vllm"]) for a, b in zip(ga, gb))
            r["identical_to_vllm"] = f"{same}/{r['samples']}"
    print(f"{len(questions)} questions x {args.n} samples of {task.name}, model {model.name}; "
          f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    headers = ["backend", "start_s", "sample_s", "samples", "tokens", "tokens_per_s", "vs_hf", "identical_to_vllm"]
    print(tabulate([[r.get(h) for h in headers] for r in rows], headers=headers, floatfmt=".2f", tablefmt="github"))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
