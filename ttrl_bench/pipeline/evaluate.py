"""``ttrl-bench eval``: measure one model on one task into a resumable run directory.

A run directory holds ``config.json`` (resolved config, versions, fingerprints),
``samples.jsonl`` (append-only), ``grades.jsonl``, ``metrics.json`` and
``records/`` (leaderboard records). Re-running the same command resumes it.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

from ttrl_bench.grading import Grader
from ttrl_bench.measure.loop import Measurement, measure
from ttrl_bench.measure.metrics import question_scores
from ttrl_bench.measure.provenance import git_revision, library_versions
from ttrl_bench.measure.records import Record, write_record
from ttrl_bench.measure.rundir import default_out_dir, open_run_dir, write_json, write_measurement
from ttrl_bench.measure.store import SampleStore
from ttrl_bench.pipeline.config import EvalConfig, Prepared, prepare
from ttrl_bench.sampling import make_sampler


def make_record(prep: Prepared, m: Measurement, *, method: str, run_dir: Path, **extra_fields) -> Record:
    # how the prompts were made travels with the numbers (a base model scored with and without a chat template differs)
    extra_fields["extra"] = {"prompt_format": prep.prompt_format, **extra_fields.get("extra", {})}
    return Record(
        model=prep.model_name,
        model_fingerprint=prep.identity["model_fingerprint"],
        task=prep.task.name,
        data_fingerprint=prep.identity["data_fingerprint"],
        method=method,
        metrics=m.summary["scores"],
        per_question=question_scores(m.grades),
        sampling=asdict(prep.params),
        versions=library_versions(),
        date=time.strftime("%Y-%m-%d"),
        run_dir=str(run_dir),
        **extra_fields,
    )


def measure_into(
    directory: Path, prep: Prepared, model_dir: Path, backend: str, grader: Grader, desc: str,
    *, progress: bool = True, **sampler_kwargs,
) -> Measurement:
    """Measure ``model_dir`` on the prepared questions, resumably, into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    m = measure(
        prep.questions, lambda: make_sampler(backend, model_dir, **sampler_kwargs), prep.params,
        answer_type=prep.task.answer_type, chat_template=prep.chat_template, grader=grader,
        store=SampleStore(directory / "samples.jsonl"), chunk_tokens=prep.chunk_tokens, progress=progress, desc=desc,
    )
    write_measurement(directory, m)
    if m.stats.chunks:  # something was sampled (not all resumed from the store)
        print(f"{desc}: {backend}: {m.stats.line()}", file=sys.stderr)
        write_json(directory / "sampling_stats.json", {**asdict(m.stats), "tokens_per_second": m.stats.tokens_per_second})
    return m


def run_eval(cfg: EvalConfig, out: Path | None = None, leaderboard: Path | None = None, progress: bool = True):
    """Measure, write the run directory (and a leaderboard record); return (run dir, measurement)."""
    prep = prepare(cfg)
    out = out or default_out_dir(prep.task.name, prep.model_name, prep.identity)
    full = {
        "identity": prep.identity,
        "request": asdict(cfg),
        "model_dir": str(prep.model_dir),
        "model_name": prep.model_name,
        "prompt_format": prep.prompt_format,
        "versions": library_versions(),
        "git_revision": git_revision(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    open_run_dir(out, prep.identity, full)

    with Grader(timeout_seconds=cfg.grading_timeout) as grader:
        m = measure_into(
            out, prep, prep.model_dir, cfg.backend, grader, f"{prep.task.name}: sampling", progress=progress,
            **cfg.sampler_options(),
        )
    record = make_record(prep, m, method="base", run_dir=out)
    write_record(record, out / "records")
    if leaderboard is not None:
        write_record(record, leaderboard)
    return out, m, record
