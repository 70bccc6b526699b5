"""The flags of ``eval`` (shared by ``run`` and ``budget``) and their translation into an ``EvalConfig``."""
from __future__ import annotations

import argparse
from pathlib import Path

from ttrl_bench.errors import UsageError


def add_eval_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default=None, help="task name from `ttrl-bench tasks`, or a task YAML file "
                   "(default: synth_near, the embedded synthetic task)")
    p.add_argument("--model", default=None, help="local model directory (default: the task's model, else the embedded tiny model)")
    p.add_argument("--model-name", default=None, help="display name in tables (default: the directory name)")
    from ttrl_bench.sampling import BACKENDS

    p.add_argument("--backend", default="hf", choices=list(BACKENDS), metavar="{" + ",".join(BACKENDS) + "}",
                   help="sampling backend (default: hf): " + "; ".join(f"{k}: {v}" for k, v in BACKENDS.items()))
    p.add_argument("-n", "--n", type=int, default=None, help="samples per question (default: the task's)")
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the task's)")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling p (default: the task's)")
    p.add_argument("--top-k", type=int, default=None, help="top-k cut, 0 = off (default: the task's)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="completion length limit (default: the task's)")
    p.add_argument("--limit", type=int, default=None, help="use only the first K questions")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--data", default=None, help="local JSON/JSONL/parquet file with the task's fields, instead of the hub")
    p.add_argument("--fields", default=None, metavar="ROLE=COLUMN,...",
                   help="map a file's columns to the task's fields, e.g. question=problem,answer=solution "
                   "(choices=RIGHT|WRONG1|... for choice tasks)")
    p.add_argument("--grading-budget", type=float, default=None, metavar="SECONDS",
                   help="grading time per question; math-verify work left after it counts as not equal and is "
                   "counted (default: the task's grading_budget, else 30)")
    chat = p.add_mutually_exclusive_group()
    chat.add_argument("--chat-template", dest="chat_template", action="store_true", default=None, help="apply the tokenizer's chat template")
    chat.add_argument("--no-chat-template", dest="chat_template", action="store_false", help="feed the prompt as plain text")
    p.add_argument("--trust-remote-code", action="store_true", help="allow model/dataset code from the hub (off by default)")
    p.add_argument("--batch-size", type=int, default=None, help="sequences (prompts x n) per hf generate call")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: 1 for the embedded model, whose tiny matrices gain nothing "
                   "from threads and lose much when a core is busy; torch's default otherwise)")
    p.add_argument("--leaderboard", type=Path, default=None,
                   help="also publish the records into this shared directory (e.g. leaderboards/); "
                   "default: records stay in the run directory only")
    p.add_argument("--no-leaderboard", action="store_true",
                   help="publish no records outside the run directory (the default; kept for scripts)")
    p.add_argument("--verbose", action="store_true",
                   help="let libraries log (datasets, transformers, TRL, vLLM INFO/WARNING); default: quiet")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<kind>-<task>-<model>-<config hash>); re-running resumes it")
    from ttrl_bench.cli.interop_flags import add_interop_flags

    add_interop_flags(p)


def eval_config_from_args(args: argparse.Namespace):
    """The flags of ``eval`` (and the eval part of ``run``) as a typed ``EvalConfig``."""
    from ttrl_bench.cli.interop_flags import server_options
    from ttrl_bench.pipeline.config import DEFAULT_TASK, EvalConfig

    return EvalConfig(
        task=args.task or DEFAULT_TASK, model=args.model, model_name=args.model_name, backend=args.backend,
        n=args.n, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        max_new_tokens=args.max_new_tokens, limit=args.limit, seed=args.seed, data=args.data,
        chat_template=args.chat_template, trust_remote_code=args.trust_remote_code, batch_size=args.batch_size,
        server=server_options(args), lm_eval_include_path=args.lm_eval_include_path,
        grading_budget=args.grading_budget, fields=args.fields,
    )


def set_threads(args) -> None:
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads: must be >= 1, got {args.threads}")
    threads = args.threads or (1 if args.model is None else None)
    if threads:
        import torch

        torch.set_num_threads(threads)
