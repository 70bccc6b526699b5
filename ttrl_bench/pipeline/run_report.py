"""What ``run`` adds to records and writes for readers: the eval curve and training signals of
each method, RUN/report.md with its figures and one sentence per method, and a copy of
that report next to leaderboard records.
"""
from __future__ import annotations

import math
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from ttrl_bench.adapt.methods import sort_methods
from ttrl_bench.adapt.train_log import LogRow, TrainStep
from ttrl_bench.measure.loop import Measurement
from ttrl_bench.measure.records import Record, load_records
from ttrl_bench.report.comparison import comparison_table
from ttrl_bench.report.figure_data import TaskRecords
from ttrl_bench.report.narrative import method_sentences

# Per-step training diagnostics kept in records (GroupReward logs them at every step).
SIGNAL_KEYS = ("label_accuracy", "majority_ratio", "reward_accuracy", "reward_mean")


def _round(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return round(float(v), 5)


def eval_point(step: int, m: Measurement, maj_key: str) -> dict:
    """One point of the eval curve from a measurement (the same keys as the probes' train-log rows)."""
    scores = m.summary.scores
    return {
        "step": step, "pass@1": scores["pass@1"]["mean"], "pass@1_stderr": scores["pass@1"].get("stderr"),
        maj_key: scores[maj_key]["mean"], f"{maj_key}_stderr": scores[maj_key].get("stderr"),
        "eval_majority_ratio": m.summary.votes.mean_majority_ratio,
    }


def curve_columns(base: Measurement, evals: list[dict], maj_key: str) -> dict[str, list]:
    """The eval curve as columns: step 0 is the base model, then every probe and the final measurement."""
    keys = ("pass@1", "pass@1_stderr", maj_key, f"{maj_key}_stderr", "eval_majority_ratio")
    rows = [eval_point(0, base, maj_key)] + sorted((r for r in evals if r.get("step", 0) > 0), key=lambda r: r["step"])
    return {"step": [r["step"] for r in rows], **{k: [_round(r.get(k)) for r in rows] for k in keys}}


def signal_columns(log_rows: Sequence[LogRow]) -> dict[str, list]:
    """The per-step training diagnostics (raw) as columns, one entry per logged training step."""
    rows = [r for r in log_rows if isinstance(r, TrainStep) and any(k in r.values for k in SIGNAL_KEYS)]
    present = [k for k in SIGNAL_KEYS if any(k in r.values for r in rows)]
    return {"step": [r.step for r in rows], **{k: [_round(r.values.get(k)) for r in rows] for k in present}} if rows else {}


def run_records(run_dir: Path, current: dict[str, Record]) -> dict[str, Record]:
    """Every method's record in the run directory (earlier invocations too), this invocation's winning."""
    found: dict[str, Record] = {}
    for records_dir in sorted(run_dir.glob("*/records")):
        for rec in load_records(records_dir):
            found[rec.method] = rec
    found.update(current)
    return {m: found[m] for m in sort_methods(found)}


def write_report(run_dir: Path, records: dict[str, Record], *, maj_key: str, extra: str = "") -> Path:
    """RUN/report.md: what happened per method in one sentence each, the curves and pass@k figures, the table."""
    from ttrl_bench.report.figures import draw_curves, draw_pass_at_k, file_stem, save  # matplotlib when drawn

    base = records["base"]
    group = TaskRecords(base.model, base.task, dict(records))
    stem = file_stem(base.task)
    lines = [f"# {base.model} on {base.task}", ""]
    lines += [f"- {s}" for s in method_sentences(group)] + [""]
    if group.methods:
        save(draw_curves([group]).figure, run_dir / "figures" / f"{stem}__curves")
        lines += [f"![pass@1 and {maj_key} against training step, from the base model at step 0]"
                  f"(figures/{stem}__curves.png)", ""]
    save(draw_pass_at_k([group]).figure, run_dir / "figures" / f"{stem}__pass_at_k")
    lines += [f"![pass@k against k for the base model and each method](figures/{stem}__pass_at_k.png)", ""]
    lines += [comparison_table(records, maj_key=maj_key), ""]
    if extra.strip():  # e.g. the transfer and held-out sections of run --eval-tasks / --holdout
        lines += [extra.strip(), ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def copy_report(run_dir: Path, record: Record, leaderboard: Path) -> str:
    """Copy RUN/report.md and its figures to LEADERBOARD/reports/<model>__<task>/; the report's path
    relative to the leaderboard's records ("" when the run has no report)."""
    from ttrl_bench.report.figures import file_stem

    src = run_dir / "report.md"
    if not src.is_file():
        return ""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", record.model).strip("-") or "model"
    dest = leaderboard / "reports" / f"{slug}__{file_stem(record.task)}"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest / "report.md")
    if (run_dir / "figures").is_dir():
        shutil.copytree(run_dir / "figures", dest / "figures", dirs_exist_ok=True)
    return str((dest / "report.md").relative_to(leaderboard))
