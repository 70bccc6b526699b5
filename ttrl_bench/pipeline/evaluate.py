"""``evaluate`` (``ttrl-bench eval``): measure one model on one task, into a resumable run directory.

A run directory holds ``config.json`` (resolved config, versions, fingerprints),
``samples.jsonl`` (append-only), ``grades.jsonl``, ``metrics.json`` and
``records/`` (leaderboard records). Re-running the same command resumes it.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ttrl_bench.grading import Grader
from ttrl_bench.measure.loop import Measurement, measure
from ttrl_bench.measure.metrics import question_scores
from ttrl_bench.measure.provenance import git_revision, library_versions
from ttrl_bench.measure.records import Record, write_record
from ttrl_bench.measure.rundir import default_out_dir, open_run_dir, write_measurement
from ttrl_bench.measure.store import SampleStore
from ttrl_bench.pipeline.config import EvalConfig, Prepared, prepare
from ttrl_bench.measure.summary import Summary
from ttrl_bench.sampling import make_sampler
from ttrl_bench.types import Completion, QuestionGrade


def make_record(prep: Prepared, m: Measurement, *, method: str, run_dir: Path | str, **extra_fields) -> Record:
    return Record(
        model=prep.model_name,
        model_fingerprint=prep.identity["model_fingerprint"],
        task=prep.task.name,
        data_fingerprint=prep.identity["data_fingerprint"],
        method=method,
        metrics=m.summary.scores,
        per_question=question_scores(m.grades),
        sampling=asdict(prep.params),
        versions=library_versions(),
        date=time.strftime("%Y-%m-%d"),
        run_dir=str(run_dir),
        **extra_fields,
    )


def measure_into(
    directory: Path | None, prep: Prepared, model_dir: Path, backend: str, grader: Grader, desc: str,
    *, progress: bool = True, **sampler_kwargs,
) -> Measurement:
    """Measure ``model_dir`` on the prepared questions, resumably, into ``directory`` (None: in memory)."""
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    m = measure(
        prep.questions, lambda: make_sampler(backend, model_dir, **sampler_kwargs), prep.params,
        answer_type=prep.task.answer_type, chat_template=prep.chat_template, grader=grader,
        store=SampleStore(directory / "samples.jsonl") if directory is not None else None,
        progress=progress, desc=desc,
    )
    if directory is not None:
        write_measurement(directory, m)
    return m


@dataclass(frozen=True)
class EvalResult:
    """What ``evaluate`` measured: the summary (pass@1, maj@N, pass@k with standard errors), the record a
    leaderboard or ``check`` reads, the graded samples, and the run directory (None when kept in memory)."""

    summary: Summary
    record: Record
    grades: list[QuestionGrade]
    completions: list[list[Completion]]
    run_dir: Path | None


AUTO = "auto"  # ``out=AUTO``: runs/eval-<task>-<model>-<config hash>, so the same call resumes its run


def evaluate(
    cfg: EvalConfig, out: str | Path | None = AUTO, *, leaderboard: str | Path | None = None, progress: bool = True,
) -> EvalResult:
    """Measure one model on one task. ``out``: the run directory (resumable), ``AUTO`` for the default
    place, None to keep everything in memory. ``leaderboard``: also write the record there."""
    prep = prepare(cfg)
    run_dir = None
    if out is not None:
        run_dir = default_out_dir(prep.task.name, prep.model_name, prep.identity) if out == AUTO else Path(out)
        open_run_dir(run_dir, prep.identity, {
            "identity": prep.identity, "request": asdict(cfg), "model_dir": str(prep.model_dir),
            "model_name": prep.model_name, "versions": library_versions(), "git_revision": git_revision(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
    with Grader(timeout_seconds=cfg.grading_timeout) as grader:
        m = measure_into(
            run_dir, prep, prep.model_dir, cfg.backend, grader, f"{prep.task.name}: sampling", progress=progress,
            trust_remote_code=cfg.trust_remote_code, batch_size=cfg.batch_size,
        )
    record = make_record(prep, m, method="base", run_dir=run_dir or "")
    if run_dir is not None:
        write_record(record, run_dir / "records")
    if leaderboard is not None:
        write_record(record, Path(leaderboard))
    return EvalResult(m.summary, record, m.grades, m.completions, run_dir)
