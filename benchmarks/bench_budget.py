"""Benchmark: the cost of a budget curve relative to the ``eval`` that produced its samples.

For each backend (hf, vllm) on the embedded episodes task: ``eval`` (Q questions x N samples)
into a fresh run directory, then ``budget`` with 6 token budgets (1, 2, 4, 8, 16, 32) plus the
task's episode boundaries and m forced answers per distinct prefix. The table gives the wall
time of each (model load / engine start included, as a user sees it), the sampling time alone,
the tokens generated, and the budget/eval ratios measured in the same run. The issue's target:
with vLLM's prefix caching, a 6-budget curve with m = 4 costs less than 1x the original sampling.

    python benchmarks/bench_budget.py                         # 100 questions x 16 samples, hf and vllm
    python benchmarks/bench_budget.py --questions 20 --backends hf
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from ttrl_bench.pipeline.budget import BudgetConfig, run_budget
from ttrl_bench.pipeline.config import EvalConfig
from ttrl_bench.pipeline.evaluate import evaluate


def one_backend(backend: str, questions: int, n: int, m: int, samples: int | None, root: Path) -> dict:
    cfg = EvalConfig(task="synth_episodes", backend=backend, limit=questions, n=n)
    out = root / f"eval-{backend}"
    start = time.perf_counter()
    measurement = evaluate(cfg, out, progress=False)
    eval_wall = time.perf_counter() - start
    eval_tokens = sum(c.num_tokens for comps in measurement.completions for c in comps)
    start = time.perf_counter()
    _, curves = run_budget(cfg, BudgetConfig(budgets=(1, 2, 4, 8, 16, 32), forced_answers=m, samples=samples),
                           out, None, progress=False)
    budget_wall = time.perf_counter() - start
    cost = curves["cost"]
    return {"backend": backend, "eval_wall": eval_wall, "eval_tokens": eval_tokens, "budget_wall": budget_wall,
            "forced_seconds": cost["forced_seconds"], "forced_tokens": cost["forced_tokens"],
            "forced_prompts": cost["forced_prompts"], "final_acc": curves["accuracy"][-1]["mean"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("-n", type=int, default=16, help="eval samples per question")
    ap.add_argument("--forced-answers", type=int, default=4)
    ap.add_argument("--budget-samples", type=int, default=None, help="eval samples cut per question (default all)")
    ap.add_argument("--backends", default="hf,vllm")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            rows.append(one_backend(backend, args.questions, args.n, args.forced_answers, args.budget_samples, Path(tmp)))
    table = [(r["backend"], f"{r['eval_wall']:.1f}", r["eval_tokens"], f"{r['budget_wall']:.1f}",
              f"{r['forced_seconds']:.1f}", r["forced_prompts"], r["forced_tokens"],
              f"{r['budget_wall'] / r['eval_wall']:.2f}x", f"{r['forced_tokens'] / r['eval_tokens']:.2f}x")
             for r in rows]
    print(f"synth_episodes, {args.questions} questions x {args.n} samples; budgets 1,2,4,8,16,32 + episode ends; "
          f"m = {args.forced_answers}; samples cut per question: {args.budget_samples or args.n}")
    print(tabulate(table, headers=["backend", "eval wall s", "eval tokens", "budget wall s", "forced sampling s",
                                   "forced prompts", "forced tokens", "budget / eval time", "budget / eval tokens"]))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
