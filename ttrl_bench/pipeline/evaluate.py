"""``evaluate`` (``ttrl-bench eval``): measure one model on one task, into a resumable run directory.

A run directory holds ``config.json`` (resolved config, versions, fingerprints),
``samples.jsonl`` (append-only), ``grades.jsonl``, ``metrics.json`` and
``records/`` (leaderboard records). Re-running the same command resumes it.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ttrl_bench.grading import Grader
from ttrl_bench.measure.loop import Measurement, measure
from ttrl_bench.measure.metrics import question_scores
from ttrl_bench.measure.provenance import git_revision, library_versions
from ttrl_bench.measure.records import Record, check_leaderboard_slots, publish_record, write_record
from ttrl_bench.measure.rundir import default_out_dir, open_run_dir, write_json, write_measurement
from ttrl_bench.measure.store import SampleStore
from ttrl_bench.pipeline.config import EvalConfig, Prepared, prepare, request_dict, sampler_options
from ttrl_bench.measure.summary import Summary
from ttrl_bench.sampling import Sampler, make_sampler
from ttrl_bench.types import Completion, QuestionGrade


def make_record(prep: Prepared, m: Measurement, *, method: str, run_dir: Path | str, **extra_fields) -> Record:
    # how the prompts were made travels with the numbers (a base model scored with and without a chat template differs)
    extra_fields["extra"] = {"prompt_format": prep.prompt_format, **extra_fields.get("extra", {})}
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
    *, progress: bool = True, sampler_factory: Callable[[], Sampler] | None = None, **sampler_kwargs,
) -> Measurement:
    """Measure ``model_dir`` on the prepared questions, resumably, into ``directory`` (None: in memory).
    ``sampler_factory``: where the sampler comes from (default: ``make_sampler`` with the kwargs), e.g. a
    ``SharedSampler.get`` so that a caller sampling more afterwards loads the model once."""
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    m = measure(
        prep.questions, sampler_factory or (lambda: make_sampler(backend, model_dir, **sampler_kwargs)), prep.params,
        answer_type=prep.task.answer_type, chat_template=prep.chat_template, grader=grader,
        store=SampleStore(directory / "samples.jsonl") if directory is not None else None,
        chunk_tokens=prep.chunk_tokens, progress=progress, desc=desc,
    )
    if m.stats.chunks and progress:  # something was sampled (not all resumed from the store)
        print(f"{desc}: {backend}: {m.stats.line()}", file=sys.stderr)
    if directory is not None:
        write_measurement(directory, m)
        if m.stats.chunks:
            write_json(directory / "sampling_stats.json", {**asdict(m.stats), "tokens_per_second": m.stats.tokens_per_second})
    return m


def export_lm_eval(directory: Path, prep: Prepared, m: Measurement, model_name: str, model_args: dict) -> list[Path]:
    """``--lm-eval-results DIR``: the measurement in lm-eval 0.4's results/samples layout."""
    from ttrl_bench.report.lm_eval_results import write_lm_eval_results

    task_name, task_config, shots, version = prep.task.name, None, 0, None
    if prep.task.source.lm_eval is not None:
        from ttrl_bench.tasks.lm_eval_task import load_lm_eval_task

        lm = load_lm_eval_task(prep.task.source.lm_eval, prep.task.source.include_path)
        task_name, task_config = prep.task.source.lm_eval, lm.dump_config()
        shots = int(lm.config.num_fewshot or 0)
        version = (lm.config.metadata or {}).get("version")
    return list(write_lm_eval_results(
        directory, task_name=task_name, model_name=model_name, questions=prep.questions, measurement=m,
        params=prep.params, model_args=model_args, task_config=task_config, num_fewshot=shots, version=version,
    ))


def model_args(prep: Prepared, backend: str, model_dir: Path | None) -> dict:
    """What lm-eval's ``config.model_args`` records: enough to tell which model answered, never a key."""
    args = {"backend": backend, "model_dir": None if model_dir is None else str(model_dir),
            "model_fingerprint": prep.identity["model_fingerprint"]}
    if prep.server is not None:
        args.update(base_url=list(prep.server.base_urls), model_id=prep.server.model_id)
    return args


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
    cfg: EvalConfig, out: str | Path | None = AUTO, *, leaderboard: str | Path | None = None,
    lm_eval_results: str | Path | None = None, progress: bool = True,
    sampler_factory: Callable[[], Sampler] | None = None,
) -> EvalResult:
    """Measure one model on one task. ``out``: the run directory (resumable), ``AUTO`` for the default
    place, None to keep everything in memory. ``leaderboard``: also write the record there.
    ``lm_eval_results``: also write lm-eval 0.4's results and samples files there. ``sampler_factory``:
    see ``measure_into`` (``budget`` passes one to sample the forced answers with the same loaded model)."""
    prep = prepare(cfg)
    if leaderboard is not None:  # a name taken by another model there: refused before the work, not after
        check_leaderboard_slots(Path(leaderboard), prep.model_name, prep.identity["model_fingerprint"], prep.task.name, ["base"])
    run_dir = None
    if out is not None:
        run_dir = default_out_dir(prep.task.name, prep.model_name, prep.identity) if out == AUTO else Path(out)
        open_run_dir(run_dir, prep.identity, {
            "identity": prep.identity, "request": request_dict(cfg),
            "model_dir": None if prep.model_dir is None else str(prep.model_dir),
            "model_name": prep.model_name, "prompt_format": prep.prompt_format, "versions": library_versions(),
            "git_revision": git_revision(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
    with Grader(timeout_seconds=cfg.grading_timeout, budget_seconds=prep.grading_budget) as grader:
        m = measure_into(
            run_dir, prep, prep.model_dir, cfg.backend, grader, f"{prep.task.name}: sampling", progress=progress,
            sampler_factory=sampler_factory, **sampler_options(cfg, prep),
        )
    record = make_record(prep, m, method="base", run_dir=run_dir or "")
    if lm_eval_results is not None:
        export_lm_eval(Path(lm_eval_results), prep, m, prep.model_name, model_args(prep, cfg.backend, prep.model_dir))
    if run_dir is not None:
        write_record(record, run_dir / "records")
    if leaderboard is not None:
        publish_record(record, Path(leaderboard))
    return EvalResult(m.summary, record, m.grades, m.completions, run_dir)
