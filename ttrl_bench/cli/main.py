"""The ``ttrl-bench`` command: parses flags, calls the pieces, prints tables. Thin on purpose."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ttrl_bench.cli.eval_flags import add_eval_flags, eval_config_from_args, set_threads
from ttrl_bench.errors import BackendError, UsageError

EPILOG = """examples:
  ttrl-bench run                                   # embedded default: base -> TTRL -> leakage RL, a few minutes on CPU
  ttrl-bench eval --task synth_near -n 16          # measure only
  ttrl-bench eval --task math500 --model PATH --backend vllm --data math500.jsonl
  ttrl-bench tasks                                 # tasks and where their data comes from
  ttrl-bench budget --task synth_episodes          # accuracy vs tokens, cumulative regret (MRT)
  ttrl-bench leaderboard leaderboards/ --format markdown
  ttrl-bench check --baseline leaderboards/ --run runs/<id>   # CI gate: exit 1 on a significant regression
  ttrl-bench eval --backend openai --base-url http://gpu-box:8000/v1 --model-id NAME --task math500 --data math500.jsonl
  ttrl-bench eval --task lm_eval:NAME --lm-eval-include-path DIR --lm-eval-results lm_eval_out/
exit codes: 0 ok, 1 regression (check), 2 bad input, 3 a sampling server failed after its retries."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr and exit 2, like every other user error
    (argparse prints its whole usage first; `--help` still shows it)."""

    def error(self, message: str):
        where = self.prog.removeprefix("ttrl-bench").strip()
        self.exit(2, f"ttrl-bench: error: {where + ': ' if where else ''}{message}\n")


def leaderboard_dir(args) -> Path | None:
    """The shared records directory, only when named; checked before anything runs."""
    if args.leaderboard is None:
        return None
    if args.no_leaderboard:
        raise UsageError("--no-leaderboard: contradicts --leaderboard; pass one of them")
    from ttrl_bench.measure.records import check_writable_dir

    check_writable_dir(args.leaderboard, "--leaderboard")
    return args.leaderboard


def _check_out(args) -> None:
    """--out that is a file or cannot be created: refused before the model is even fingerprinted."""
    if args.out is not None:
        from ttrl_bench.measure.records import check_writable_dir

        check_writable_dir(args.out, "--out")


def cmd_tasks(args) -> int:
    from tabulate import tabulate

    from ttrl_bench.tasks import load_tasks

    rows = [(t.name, t.answer_type, t.source_description(), t.description) for t in load_tasks().values()]
    print(tabulate(rows, headers=["task", "answer", "source", "description"]))
    return 0


def cmd_eval(args) -> int:
    from ttrl_bench.pipeline.evaluate import AUTO, evaluate
    from ttrl_bench.report.console import summary_table

    _check_out(args)
    leaderboard = leaderboard_dir(args)
    cfg = eval_config_from_args(args)
    set_threads(args)
    result = evaluate(cfg, args.out or AUTO, leaderboard=leaderboard, lm_eval_results=args.lm_eval_results)
    print(summary_table(result.record, result.summary))
    print(f"\nrun directory: {result.run_dir}")
    return 0


def cmd_run(args) -> int:
    from ttrl_bench.cli.adapt_flags import run_config_from_args
    from ttrl_bench.pipeline.evaluate import AUTO
    from ttrl_bench.pipeline.run import run

    _check_out(args)
    leaderboard = leaderboard_dir(args)
    cfg = run_config_from_args(args, eval_config_from_args(args))
    set_threads(args)
    result = run(cfg, args.out or AUTO, leaderboard=leaderboard, lm_eval_results=args.lm_eval_results)
    print(result.table)
    print(f"\nrun directory: {result.run_dir}  (report: {result.report})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
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
    add_eval_flags(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("run", help="base -> adaptation (TTRL, leakage RL, controls) -> comparison table",
                       description="Measure the base model, adapt it on the task's unlabeled questions with each "
                       "method through TRL's GRPOTrainer, measure again, and print the comparison.")
    add_eval_flags(p)
    from ttrl_bench.cli.adapt_flags import add_adapt_flags

    add_adapt_flags(p)
    p.set_defaults(func=cmd_run)

    from ttrl_bench.cli.budget_cmd import add_budget_parser
    from ttrl_bench.cli.report_cmds import add_check_parser, add_leaderboard_parser

    add_budget_parser(sub, add_eval_flags)

    add_leaderboard_parser(sub)
    add_check_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        args = build_parser().parse_args(argv)
        from ttrl_bench.cli.noise import quiet_libraries

        quiet_libraries(verbose=getattr(args, "verbose", False))
        return args.func(args)
    except UsageError as exc:
        _discard_unfinished()
        print(f"ttrl-bench: error: {exc}", file=sys.stderr)
        return 2
    except BackendError as exc:
        print(f"ttrl-bench: error: {exc}; finished samples are saved, re-run the same command to resume", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        _discard_unfinished()
        print("\nttrl-bench: interrupted; finished samples are saved, re-run the same command to resume", file=sys.stderr)
        return 130
    finally:
        from ttrl_bench.measure.rundir import release_all_run_dirs

        release_all_run_dirs()  # the lock is held for the command, also when main() runs in-process


def _discard_unfinished() -> None:
    """A run directory this process created and left without any result would refuse the corrected rerun."""
    from ttrl_bench.measure.rundir import discard_unfinished

    discard_unfinished()


if __name__ == "__main__":
    sys.exit(main())
