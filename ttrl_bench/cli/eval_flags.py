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
    task_setting(p, "-n", "--n", type=int, help="samples per question")
    task_setting(p, "--temperature", type=float, help="sampling temperature")
    task_setting(p, "--top-p", type=float, help="nucleus sampling p")
    task_setting(p, "--top-k", type=int, help="top-k cut, 0 = off")
    task_setting(p, "--max-new-tokens", type=int, help="completion length limit")
    p.add_argument("--limit", type=int, default=None, help="use only the first K questions")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--data", default=None, help="local JSON/JSONL/parquet file with the task's fields, instead of the hub")
    p.add_argument("--fields", default=None, metavar="ROLE=COLUMN,...",
                   help="map a file's columns to the task's fields, e.g. question=problem,answer=solution "
                   "(choices=RIGHT|WRONG1|... for choice tasks)")
    task_setting(p, "--grading-budget", type=float, metavar="SECONDS", field="grading_budget, else 30",
                 help="grading time per question; math-verify work left after it counts as not equal and is counted")
    p.add_argument("--grading-timeout", type=float, default=5.0, metavar="SECONDS",
                   help="time limit of one math-verify parse or comparison (default 5, math-verify's own); a text whose "
                   "parse times out is unreadable for the rest of the question. Lower it (e.g. 1) for untrusted or "
                   "adversarial outputs, where most of the grading time is spent on timeouts")
    chat = p.add_mutually_exclusive_group()
    chat.add_argument("--chat-template", dest="chat_template", action="store_true", default=None,
                      help="apply the tokenizer's chat template (default: the task's; the shipped real tasks say auto: "
                      "the template if the tokenizer has one, else plain text, as for most base models)")
    chat.add_argument("--no-chat-template", dest="chat_template", action="store_false", help="feed the prompt as plain text")
    bos = p.add_mutually_exclusive_group()
    bos.add_argument("--add-bos", dest="add_bos", action="store_true", default=None,
                     help="start every prompt with exactly one BOS token (default: as the tokenizer encodes; a warning "
                     "if the model's config names a BOS the prompts lack)")
    bos.add_argument("--no-add-bos", dest="add_bos", action="store_false", help="never start a prompt with a BOS token")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="weights' dtype for sampling (default: auto, the checkpoint's)")
    p.add_argument("--chunk-tokens", type=int, default=None,
                   help="tokens (n x (prompt + max new tokens)) per sampler call; a finished call is saved, so a kill "
                   "loses at most one (default: 8192 on CPU, 262144 with a GPU)")
    p.add_argument("--vllm-kv-cache-gb", type=float, default=None,
                   help="vllm: KV cache size in GiB (default on CPU: 4; on GPU: what --vllm-memory-share leaves)")
    p.add_argument("--vllm-memory-share", type=float, default=None,
                   help="vllm: share of GPU memory (on CPU: of RAM) the engine may use (default: vLLM's, 0.9; on CPU "
                   "used for the KV cache only without --vllm-kv-cache-gb)")
    p.add_argument("--vllm-max-model-len", type=int, default=None,
                   help="vllm: longest prompt + completion in tokens (default: the model's; on CPU at most 32768)")
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


def task_setting(p: argparse.ArgumentParser, *names: str, type: type, help: str, metavar: str | None = None,
                 field: str = "") -> None:
    """A flag that, unset (None), takes the task file's own value (``field`` names it where the flag's name does not)."""
    p.add_argument(*names, type=type, default=None, metavar=metavar,
                   help=f"{help} (default: the task's{' ' + field if field else ''})")


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
        grading_budget=args.grading_budget, grading_timeout=args.grading_timeout, fields=args.fields,
        add_bos=args.add_bos, dtype=args.dtype, chunk_tokens=args.chunk_tokens, vllm_kv_cache_gb=args.vllm_kv_cache_gb,
        vllm_memory_share=args.vllm_memory_share, vllm_max_model_len=args.vllm_max_model_len,
    )


def set_threads(args) -> None:
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads: must be >= 1, got {args.threads}")
    threads = args.threads or (1 if args.model is None else None)
    if threads:
        import torch

        torch.set_num_threads(threads)
