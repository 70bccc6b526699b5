"""Console tables for one measurement (``eval``) and for a base-vs-methods comparison (``run``)."""
from __future__ import annotations

from tabulate import tabulate

from ttrl_bench.measure.metrics import level_order
from ttrl_bench.measure.records import Record
from ttrl_bench.measure.summary import Summary


def pct(mean: float, stderr: float | None = None) -> str:
    return f"{100 * mean:.1f}" if stderr is None else f"{100 * mean:.1f} ± {100 * stderr:.1f}"


def summary_table(record: Record, summary: Summary) -> str:
    """The scores of one measurement, one row per metric, plus the by-level breakdown if any."""
    rows = [(name, pct(v["mean"], v["stderr"])) for name, v in summary.scores.items()]
    head = (
        f"{record.model} on {record.task}: {summary.num_questions} questions x {summary.n} samples "
        f"(T={record.sampling['temperature']}, top_p={record.sampling['top_p']})"
    )
    out = [head, tabulate(rows, headers=["metric", "score (%) ± s.e."])]
    levels = summary.by_level
    if levels:
        names = list(summary.scores)
        lrows = [
            [lvl, lv.num_questions, *(pct(lv.scores[m]["mean"], lv.scores[m]["stderr"]) for m in names)]
            for lvl, lv in sorted(levels.items(), key=lambda item: level_order(item[0]))
        ]
        out.append(tabulate(lrows, headers=["level", "questions", *names]))
    votes, lengths = summary.votes, summary.lengths
    out.append(
        f"vote ties: {votes.ties}; samples without an answer: {votes.no_answer_samples}; "
        f"mean length: {lengths.mean_tokens:.1f} tokens; truncated: {100 * lengths.truncation_rate:.1f}%; "
        f"grading timeouts: {summary.grading_timeouts}"
        + (f" (+{summary.grading_skipped} comparisons skipped)" if summary.grading_skipped else "")
    )
    return "\n\n".join(out)
