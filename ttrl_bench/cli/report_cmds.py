"""argparse wiring for `ttrl-bench leaderboard` and `ttrl-bench check`.

``cli.main`` calls add_leaderboard_parser / add_check_parser on its subparsers; each sets
``func``, a handler that takes the parsed namespace and returns the exit code. Invalid
input raises UsageError (the CLI maps it to 2).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ttrl_bench.report.gate import check, render_check
from ttrl_bench.errors import UsageError
from ttrl_bench.report.leaderboard import FORMATS, LAYOUTS, render_leaderboard
from ttrl_bench.measure.records import check_writable_dir, load_records, records_directory


def add_leaderboard_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "leaderboard",
        help="tables (and an HTML page) from leaderboard records",
        description="Render leaderboard records as a table: rows are models; per task base / TTRL / leakage "
        "(and any controls) with ± standard error, the TTRL gain and the share of the leakage gain it recovers.",
    )
    parser.add_argument("dir", nargs="?", default="leaderboards", metavar="DIR",
                        help="directory of records, a run directory, or one record file (default: leaderboards)")
    parser.add_argument("--format", default="markdown", choices=FORMATS)
    parser.add_argument("--layout", default=None, choices=LAYOUTS,
                        help="paper: one row per model, tasks as column groups plus an average; "
                        "long: one row per (model, task, method) (default: long for html, paper otherwise); "
                        "transfer: rows adapted-on, columns measured-on, cells gain over base ± paired s.e. "
                        "(run --eval-tasks / --holdout results)")
    parser.add_argument("--metric", action="append", dest="metrics", metavar="METRIC",
                        help="pass@1 (default), pass@K or maj@N; repeat or comma-separate for several")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the table here instead of stdout")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="also draw grouped bars of the first metric into PNG")
    parser.add_argument("--figures", type=Path, metavar="OUT",
                        help="also write paper figures per task into OUT: <task>__curves, __pass_at_k, __levels "
                        "(tasks with levels), __labels (runs with per-step signals), each as .png and .pdf, 3.3 in wide")
    parser.set_defaults(func=run_leaderboard)
    return parser


def _check_output_file(path: Path | None, flag: str) -> None:
    """An output file's place, checked before any work: not a directory, its folder creatable and writable."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory; expected a file name")
    check_writable_dir(path.parent, flag)


def run_leaderboard(args: argparse.Namespace) -> int:
    _check_output_file(args.output, "-o/--output")
    _check_output_file(args.plot, "--plot")
    metrics = [m.strip() for arg in (args.metrics or ["pass@1"]) for m in arg.split(",") if m.strip()]
    records = load_records(args.dir)
    if args.figures is not None and args.figures.exists() and not args.figures.is_dir():
        raise UsageError(f"--figures {args.figures}: expected a directory, found a file")
    page_dir = args.output.parent if args.output else Path(".")
    text = render_leaderboard(
        records, args.format, metrics=metrics, layout=args.layout, record_dir=records_directory(args.dir),
        page_dir=page_dir,
    )
    if args.output:
        try:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"-o/--output {args.output}: cannot write ({exc.strerror})") from None
    else:
        sys.stdout.write(text)
    if args.plot:
        from ttrl_bench.report.plots import plot_leaderboard  # matplotlib only when asked for

        plot_leaderboard(records, args.plot, metric=metrics[0])
    if args.figures is not None:
        from ttrl_bench.report.figures import write_task_figures

        for path in write_task_figures(records, args.figures):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def add_check_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "check",
        help="CI gate: exit 1 when a run is significantly worse than a baseline",
        description="Paired sign-flip permutation test over questions, per (task, method) present in both. Exit 0: no significant "
        "regression; 1: a regression; 2: inputs that cannot be compared. Appends a markdown summary to "
        "$GITHUB_STEP_SUMMARY when that is set.",
    )
    parser.add_argument("--baseline", required=True, metavar="RECORD_OR_DIR",
                        help="a record file or a directory of records (e.g. leaderboards/)")
    parser.add_argument("--baseline-model", default=None, metavar="NAME",
                        help="when --baseline holds several models, compare against this one "
                        "(default: the run's own model name)")
    parser.add_argument("--run", required=True, metavar="RUN_DIR_OR_RECORD",
                        help="a run directory (uses RUN_DIR/records), a directory of records, or a record file")
    parser.add_argument("--metric", default="pass@1", help="pass@1 (default), pass@K or maj@N")
    parser.add_argument("--alpha", type=float, default=0.05, help="level of the one-sided test (default 0.05)")
    parser.add_argument("--min-effect", type=float, default=0.0, metavar="POINTS",
                        help="a significant drop counts as a regression only when larger than this (default 0)")
    parser.add_argument("--format", default="text", choices=("text", "markdown"), help="what to print on stdout")
    parser.add_argument("--allow-different-sampling", action="store_true",
                        help="compare records measured with different sampling settings (n, temperature, top-p, "
                        "top-k, max new tokens); refused by default (exit 2)")
    parser.set_defaults(func=run_check)
    return parser


def run_check(args: argparse.Namespace) -> int:
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:  # exit 1 means "regression" to CI: a summary we cannot write must be 2, and found first
        try:
            with open(summary, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise UsageError(f"GITHUB_STEP_SUMMARY {summary}: cannot append to it ({exc.strerror})") from None
    try:
        result = check(
            load_records(args.baseline), load_records(args.run),
            metric=args.metric, alpha=args.alpha, min_effect=args.min_effect, baseline_model=args.baseline_model,
            allow_different_sampling=args.allow_different_sampling,
        )
    except UsageError as exc:
        if summary:  # so the CI page says why the job failed, not only the log
            _append(summary, f"### ⚠️ ttrl-bench check: invalid input (exit 2)\n\n{_quote(str(exc))}\n")
        raise
    sys.stdout.write(render_check(result, args.format))
    if summary:
        _append(summary, render_check(result, "markdown"))
    return result.exit_code


def _append(path: str, text: str) -> None:
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    except OSError as exc:
        raise UsageError(f"GITHUB_STEP_SUMMARY {path}: cannot append to it ({exc.strerror})") from None


def _quote(message: str) -> str:
    """A message as a markdown code span (backticks inside would end it early)."""
    return "`" + message.replace("`", "'") + "`"
