"""``ttrl-bench run``: base -> each method (adapt, measure) -> comparison, in one resumable run directory.

Layout: RUN/config.json, RUN/base/ (a measurement), RUN/<method>/{spec.json, checkpoints/,
train_log.jsonl, model/, samples.jsonl, metrics.json, training.png, records/}, RUN/report.md.
Base and adapted models are measured by the same code with the same seeds, so the
paired differences compare like with like.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ttrl_bench.adapt.probe import PROBE_BACKEND
from ttrl_bench.report.comparison import comparison_table
from ttrl_bench.adapt.config import (
    PAPER, TINY, AdaptConfig, colocated_cpu_memory_share, paper_steps, per_device_batch, with_overrides,
)
from ttrl_bench.demo import EMBEDDED_MODEL, EPISODES_MODEL
from ttrl_bench.errors import UsageError
from ttrl_bench.measure.rundir import default_out_dir, open_run_dir, write_json
from ttrl_bench.pipeline.config import Prepared, prepare, request_dict, sampler_options
from ttrl_bench.pipeline.run_config import RunConfig
from ttrl_bench.pipeline.evaluate import AUTO, export_lm_eval, make_record, measure_into, model_args
from ttrl_bench.pipeline.generalization import Generalization
from ttrl_bench.grading import Grader
from ttrl_bench.measure.provenance import git_revision, library_versions, model_fingerprint
from ttrl_bench.measure.records import Record, check_leaderboard_slots, publish_record, write_record
from ttrl_bench.pipeline.run_report import copy_report, curve_columns, run_records, signal_columns, write_report


def resolve_adapt(cfg: RunConfig, prep: Prepared) -> AdaptConfig:
    """The adaptation settings of a run: the profile (embedded or paper), then the user's overrides."""
    o = cfg.adapt
    if o.steps is not None and o.steps < 1:
        # 0 used to mean "the paper's epochs" silently; that is what leaving --steps unset does for real models
        raise UsageError(f"--steps: must be >= 1, got {o.steps} (leave it unset for the profile's default)")
    model = prep.model_dir.resolve()
    if model == EPISODES_MODEL.resolve():  # the tiny profile, with the task's answer length
        base = replace(TINY, max_new_tokens=prep.params.max_new_tokens)
    else:
        base = TINY if model == EMBEDDED_MODEL.resolve() else replace(PAPER, max_new_tokens=prep.params.max_new_tokens)
    adapt_cfg = with_overrides(
        base, steps=o.steps, prompts_per_step=o.prompts_per_step, samples=o.samples, votes=o.votes,
        learning_rate=o.lr, lr_scheduler=o.lr_scheduler, beta=o.beta, temperature=o.train_temperature,
        max_new_tokens=o.train_max_new_tokens, eval_every=o.eval_every, save_every=o.save_every,
        vllm_mode=o.vllm_mode, report_to=o.report_to, seed=cfg.eval.seed, progress_weight=o.progress_weight,
        progress_answers=o.progress_answers, lora_r=o.lora_r, lora_alpha=o.lora_alpha, lora_targets=o.lora_targets,
    )
    if o.use_vllm:
        share = o.train_vllm_memory_share
        if share is None and (adapt_cfg.vllm_mode == "colocate") and not _has_cuda():
            share = colocated_cpu_memory_share(model)
        adapt_cfg = replace(adapt_cfg, use_vllm=True, vllm_memory_share=share)
    if adapt_cfg.steps == 0:  # the paper's epochs for this task
        adapt_cfg = replace(adapt_cfg, steps=paper_steps(prep.task.name, len(prep.questions), adapt_cfg.prompts_per_step))
    if o.votes is None and o.samples is not None:  # keep the profile's votes:samples ratio
        adapt_cfg = replace(adapt_cfg, votes=o.samples * base.votes // base.samples)
    adapt_cfg.validate()
    if adapt_cfg.prompts_per_step > len(prep.questions):
        raise UsageError(f"--prompts-per-step: {adapt_cfg.prompts_per_step} is more than the {len(prep.questions)} "
                         "questions; a step needs that many distinct questions")
    per_device_batch(adapt_cfg, cfg.processes)  # the workers' layout check, before anything is measured or launched
    return adapt_cfg


def _launch(spec_path: Path, processes: int, accelerate_config: str | Path | None) -> None:
    import torch

    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes), "--num_machines", "1"]
    if accelerate_config is not None:
        cmd += ["--config_file", str(accelerate_config)]
    if not torch.cuda.is_available():
        # accelerate's `--cpu` takes its simple launcher: ONE process, whatever --num_processes
        # says. Its multi-process launcher (torchrun) on a machine without CUDA gives MULTI_CPU
        # with gloo; port 0 = a free port, so concurrent runs do not collide on 29500.
        if processes > 1 and accelerate_config is None:
            cmd += ["--multi_gpu", "--main_process_port", "0"]
        else:
            cmd += ["--cpu"]
    cmd += ["-m", "ttrl_bench.adapt.worker", str(spec_path)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(cmd, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"adaptation processes failed (exit {done.returncode}): {' '.join(cmd)}")


def _copy_plots(rec: Record, record_dir: Path, leaderboard: Path) -> list[str]:
    """Copy a record's plots next to the leaderboard records, so the directory stands on its own."""
    out = []
    for rel in rec.plots:
        src = (record_dir / rel).resolve()
        if src.exists():
            dest = leaderboard / "plots" / (Path(rec.filename).stem + src.suffix)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            out.append(str(dest.relative_to(leaderboard)))
    return out


@dataclass(frozen=True)
class RunResult:
    """What ``run`` produced: one record per method ("base" first), the comparison table (markdown), and
    the run directory holding everything (``report.md``, each method's model, samples and train log)."""

    records: dict[str, Record]
    table: str
    run_dir: Path

    @property
    def report(self) -> Path:
        return self.run_dir / "report.md"


def run(
    cfg: RunConfig, out: str | Path = AUTO, *, leaderboard: str | Path | None = None,
    lm_eval_results: str | Path | None = None, progress: bool = True,
) -> RunResult:
    """Measure the base model, adapt it with each method through TRL's GRPOTrainer, measure each adapted
    model the same way, and compare. ``out``: the run directory (``AUTO``: runs/run-<task>-<model>-<hash>);
    re-running the same call resumes it. Adaptation writes models, so a run always has a directory."""
    from ttrl_bench.adapt.summary import train_summary  # torch/transformers load only when a run runs
    from ttrl_bench.adapt.train_log import parse_rows, read_rows
    from ttrl_bench.adapt.train import AdaptSpec, adapt, last_checkpoint
    from ttrl_bench.report.plots import plot_training

    e = cfg.eval
    prep = prepare(e)
    adapt_cfg = resolve_adapt(cfg, prep)
    if leaderboard is not None:  # a name taken by another model there: refused before the work, not after
        check_leaderboard_slots(Path(leaderboard), prep.model_name, prep.identity["model_fingerprint"], prep.task.name,
                                ["base", *cfg.methods])
    # save_every changes when checkpoints are written, never what is trained: not part of the run's identity
    identity = {**prep.identity, "adapt": {k: v for k, v in asdict(adapt_cfg).items() if k not in ("method", "save_every")}}
    # eval tasks, held-out split, base vote baseline: checked before anything is written
    gen = Generalization.plan(e, prep, adapt_cfg.votes, eval_tasks=cfg.eval_tasks, holdout=cfg.holdout,
                              holdout_seed=cfg.holdout_seed)
    identity = gen.extend_identity(identity)
    run_dir = default_out_dir(prep.task.name, prep.model_name, identity, "run") if out == AUTO else Path(out)
    open_run_dir(run_dir, identity, {
        "identity": identity, "request": {**asdict(cfg), "eval": request_dict(e)}, "model_dir": str(prep.model_dir),
        "prompt_format": prep.prompt_format, "versions": library_versions(), "git_revision": git_revision(),
    })
    # A damaged checkpoint is refused now, not after the base measurement; under the lock, so a
    # checkpoint another process is rotating is never mistaken for a damaged one.
    for method in cfg.methods:
        if not (run_dir / method / "model" / "ADAPTED").exists():
            last_checkpoint(run_dir / method / "checkpoints")
    say = (lambda text: print(text, file=sys.stderr)) if progress else (lambda text: None)
    say(f"run directory: {run_dir}")
    kw = sampler_options(e, prep)
    records: dict[str, Record] = {}
    maj_key = f"maj@{prep.params.n}"

    with Grader(timeout_seconds=e.grading_timeout, budget_seconds=prep.grading_budget) as grader:
        # the base model sampled max(N, votes) times, once; and once on each eval task
        records["base"] = replace(gen.base_record(run_dir / "base", e.backend, grader, **kw), report="../../report.md")
        write_record(records["base"], run_dir / "base" / "records")
        base = gen.base_measurement
        transfer = gen.other_bases(run_dir, e.backend, grader, **kw)
        if lm_eval_results is not None:
            export_lm_eval(Path(lm_eval_results), prep, base, prep.model_name, model_args(prep, e.backend, prep.model_dir))
        for method in cfg.methods:
            mdir = run_dir / method
            mdir.mkdir(parents=True, exist_ok=True)
            mcfg = replace(adapt_cfg, method=method)
            model_out = mdir / "model"
            if not (model_out / "ADAPTED").exists():
                spec = AdaptSpec(
                    # a task file's path, so that a --task FILE.yaml outside the tasks folder is found again
                    task=str(prep.task.path) if prep.task.path.suffix in (".yaml", ".yml") else prep.task.name,
                    model_dir=str(prep.model_dir), out_dir=str(mdir), config=mcfg,
                    eval_sampling=prep.params, chat_template=prep.chat_template, data=e.data,
                    limit=e.limit, trust_remote_code=e.trust_remote_code,
                    grading_timeout=e.grading_timeout, lm_eval_include_path=e.lm_eval_include_path,
                    backend=e.backend, **gen.spec_fields(),
                )
                spec.write(mdir / "spec.json")
                say(f"{method}: adapting ({mcfg.steps} steps)")
                # --use-vllm: TRL's colocated engine lives in the training process and keeps its memory
                # until that process ends (the next method's engine would find it taken): its own process.
                if cfg.processes > 1 or cfg.accelerate_config is not None or mcfg.use_vllm:
                    _launch(mdir / "spec.json", cfg.processes, cfg.accelerate_config)
                else:
                    adapt(spec)
            m = measure_into(mdir, prep, model_out, e.backend, grader, f"{method}: sampling", progress=progress, **kw)
            log_rows = read_rows(mdir / "train_log.jsonl")
            summary = train_summary(log_rows, maj_key, gen.in_sample(m), mcfg.steps, backend=e.backend,
                                    start=gen.in_sample(base))
            # the last eval point is the final measurement, taken above with the base model's code
            sampled = "" if e.backend == PROBE_BACKEND else \
                f"\nprobes sampled with {PROBE_BACKEND}; last point {mcfg.steps} with {e.backend}"
            plot_training([*log_rows, *parse_rows(summary["evals"][-1:])], mdir / "training.png",
                          title=f"{prep.model_name} / {prep.task.name} / {method}{sampled}")
            write_json(mdir / "train_summary.json", summary)
            if summary.get("step_seconds_mean") is not None and summary.get("peak_memory_gib") is not None:
                print(f"{method}: {summary['step_seconds_mean']:.2f} s a step, peak memory "
                      f"{summary['peak_memory_gib']:.2f} GiB (main process)", file=sys.stderr)
            rec = make_record(
                prep, m, method=method, run_dir=mdir, method_config=asdict(mcfg),
                adapted_fingerprint=model_fingerprint(model_out),
                extra={k: v for k, v in summary.items() if k != "evals"}, **gen.record_fields(),
                curve=curve_columns(base, summary["evals"], maj_key), signals=signal_columns(log_rows),
                report="../../report.md",  # relative to the record's directory, like plots
            )
            records[method] = replace(rec, plots=["../training.png"])  # relative to the record's directory
            if lm_eval_results is not None:  # one lm-eval "model" per adapted copy
                export_lm_eval(Path(lm_eval_results), prep, m, f"{prep.model_name}+{method}",
                               {**model_args(prep, e.backend, model_out), "method": method})
            write_record(records[method], mdir / "records")
            # [issue 15 hook 5] the adapted model on each eval task
            transfer += gen.other_methods(run_dir, method, model_out, asdict(mcfg), e.backend, grader, **kw)

    # the report covers every method of the run directory, also those adapted by an earlier invocation
    everything = run_records(run_dir, records)
    table = comparison_table(everything, maj_key=maj_key)
    write_report(run_dir, everything, maj_key=maj_key, extra=gen.report(list(records.values()), transfer, maj_key))
    if leaderboard is not None:
        lb = Path(leaderboard)
        for rec in records.values():
            publish_record(replace(rec, plots=_copy_plots(rec, run_dir / rec.method / "records", lb),
                                   report=copy_report(run_dir, rec, lb)), lb)
        for rec in transfer:
            publish_record(rec, lb)
    return RunResult(records, table, run_dir)


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
