"""Flags of ``eval``/``run`` for the ecosystem around ttrl-bench: OpenAI-compatible servers
(``--backend openai``), lm-eval tasks in (``--task lm_eval:NAME``) and lm-eval results out."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_interop_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "OpenAI-compatible servers (--backend openai)",
        "Sample through running servers (vLLM, SGLang, ...) with the openai client: one request per question "
        "with n= samples and its own seed; several --base-url spread the questions over several servers. "
        "--model, if given, is a local copy of the served model's tokenizer (for --chat-template).",
    )
    g.add_argument("--base-url", action="append", default=None, metavar="URL",
                   help="API root of a server, e.g. http://gpu-box:8000/v1; repeat for data parallel over several servers")
    g.add_argument("--api-key", default=None, help="API key (default: $OPENAI_API_KEY, else none); never written to disk")
    g.add_argument("--model-id", default=None, help="the served model name (default: the only model the server serves)")
    g.add_argument("--endpoint", default="completions", choices=["completions", "chat"],
                   help="completions: the prompt text as rendered here (default); chat: the question as a user message, "
                   "the server applies its chat template")
    g.add_argument("--max-concurrency", type=int, default=8, help="requests in flight per server (default 8)")
    g.add_argument("--max-retries", type=int, default=5,
                   help="retries of a request on 429, 5xx, timeouts and malformed answers, with exponential backoff (default 5)")
    g.add_argument("--request-timeout", type=float, default=600.0, help="seconds per request (default 600)")
    g = p.add_argument_group("lm-evaluation-harness")
    g.add_argument("--lm-eval-include-path", default=None, metavar="DIR",
                   help="folder of lm-eval task YAMLs for --task lm_eval:NAME (tasks outside lm-eval's registry)")
    g.add_argument("--lm-eval-results", type=Path, default=None, metavar="DIR",
                   help="also write results_<date>.json and samples_<task>_<date>.jsonl in lm-eval 0.4's layout into DIR/<model>/")


def server_options(args):
    """``ServerOptions`` from the flags, or None when no server flag was given (other backends)."""
    from ttrl_bench.sampling.openai import ServerOptions

    if args.backend != "openai" and not args.base_url and args.model_id is None:
        return None
    options = ServerOptions(
        base_urls=tuple(args.base_url or ()), model_id=args.model_id, api_key=args.api_key, endpoint=args.endpoint,
        concurrency=args.max_concurrency, max_retries=args.max_retries, timeout=args.request_timeout,
    )
    options.validate()
    return options
