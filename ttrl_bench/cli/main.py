"""The ``ttrl-bench`` command: parses flags, calls the pieces, prints tables. Thin on purpose."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ttrl_bench.errors import UsageError

EPILOG = """examples:
  ttrl-bench run                                   # embedded default: base -> TTRL -> leakage RL, a few minutes on CPU
  ttrl-bench eval --task synth_near -n 16          # measure only
  ttrl-bench eval --task math500 --model PATH --backend vllm --data math500.jsonl
  ttrl-bench tasks                                 # tasks and where their data comes from
  ttrl-bench leaderboard leaderboards/ --format markdown
  ttrl-bench check --baseline leaderboards/ --run runs/<id>   # CI gate: exit 1 on a significant regression
exit codes: 0 ok, 1 regression (check), 2 bad input."""


def _add_eval_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default=None, help="task name from `ttrl-bench tasks` (default: synth_near, the embedded synthetic task)")
    p.add_argument("--model", default=None, help="local model directory (default: the embedded tiny model)")
    p.add_argument("--model-name", default=None, help="display name in tables (default: the directory name)")
    p.add_argument("--backend", default="hf", choices=["hf", "vllm"], help="sampling backend (default: hf)")
    p.add_argument("-n", "--n", type=int, default=None, help="samples per question (default: the task's)")
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the task's)")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling p (default: the task's)")
    p.add_argument("--top-k", type=int, default=None, help="top-k cut, 0 = off (default: the task's)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="completion length limit (default: the task's)")
    p.add_argument("--limit", type=int, default=None, help="use only the first K questions")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--data", default=None, help="local JSON/JSONL/parquet file with the task's fields, instead of the hub")
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
    p.add_argument("--leaderboard", type=Path, default=Path("leaderboards"), help="where to write records (default: leaderboards/)")
    p.add_argument("--no-leaderboard", action="store_true", help="do not write leaderboard records")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<kind>-<task>-<model>-<config hash>); re-running resumes it")


def _eval_config(args):
    from ttrl_bench.pipeline.config import DEFAULT_TASK, EvalConfig

    return EvalConfig(
        task=args.task or DEFAULT_TASK, model=args.model, model_name=args.model_name, backend=args.backend,
        n=args.n, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        max_new_tokens=args.max_new_tokens, limit=args.limit, seed=args.seed, data=args.data,
        chat_template=args.chat_template, trust_remote_code=args.trust_remote_code, batch_size=args.batch_size,
        add_bos=args.add_bos, dtype=args.dtype, chunk_tokens=args.chunk_tokens, vllm_kv_cache_gb=args.vllm_kv_cache_gb,
        vllm_memory_share=args.vllm_memory_share, vllm_max_model_len=args.vllm_max_model_len,
    )


def _set_threads(args) -> None:
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads: must be >= 1, got {args.threads}")
    threads = args.threads or (1 if args.model is None else None)
    if threads:
        import torch

        torch.set_num_threads(threads)


def cmd_tasks(args) -> int:
    from tabulate import tabulate

    from ttrl_bench.tasks import load_tasks

    rows = [(t.name, t.answer_type, t.source_description(), t.description) for t in load_tasks().values()]
    print(tabulate(rows, headers=["task", "answer", "source", "description"]))
    return 0


def cmd_eval(args) -> int:
    from ttrl_bench.pipeline.evaluate import run_eval
    from ttrl_bench.report.console import summary_table

    _set_threads(args)
    out, m, record = run_eval(_eval_config(args), args.out, None if args.no_leaderboard else args.leaderboard)
    print(summary_table(record, m.summary))
    print(f"\nrun directory: {out}")
    return 0


def cmd_run(args) -> int:
    from ttrl_bench.pipeline.run import run_from_args

    _set_threads(args)
    return run_from_args(args, _eval_config(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ttrl-bench",
        description="Measure test-time RL: pass@1 (avg@N), maj@N and pass@k with error bars; TTRL adaptation "
        "against the base model and the leakage-RL upper bound; leaderboards and a CI regression gate.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("tasks", help="list the tasks and their data sources")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("eval", help="measure a model on a task (no adaptation)",
                       description="Sample N completions per question, grade them, and print pass@1, maj@N and pass@k "
                       "with standard errors. Writes a resumable run directory.")
    _add_eval_flags(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("run", help="base -> adaptation (TTRL, leakage RL, controls) -> comparison table",
                       description="Measure the base model, adapt it on the task's unlabeled questions with each "
                       "method through TRL's GRPOTrainer, measure again, and print the comparison.")
    _add_eval_flags(p)
    from ttrl_bench.cli.adapt_flags import add_adapt_flags

    add_adapt_flags(p)
    p.set_defaults(func=cmd_run)

    from ttrl_bench.cli.report_cmds import add_check_parser, add_leaderboard_parser

    add_leaderboard_parser(sub)
    add_check_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # keep vLLM's INFO lines out of the results
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"ttrl-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nttrl-bench: interrupted; finished samples are saved, re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
