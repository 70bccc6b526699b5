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
from dataclasses import asdict, replace
from pathlib import Path

from ttrl_bench.adapt.methods import parse_methods
from ttrl_bench.adapt.callbacks import TrainLog
from ttrl_bench.adapt.probe import PROBE_BACKEND
from ttrl_bench.adapt.summary import train_summary
from ttrl_bench.report.comparison import comparison_table
from ttrl_bench.adapt.config import PAPER, TINY, AdaptConfig, paper_steps, per_device_batch, with_overrides
from ttrl_bench.adapt.train import AdaptSpec, adapt
from ttrl_bench.errors import UsageError
from ttrl_bench.demo import EMBEDDED_MODEL
from ttrl_bench.measure.rundir import default_out_dir, open_run_dir, write_json
from ttrl_bench.pipeline.config import Prepared, prepare
from ttrl_bench.pipeline.evaluate import make_record, measure_into
from ttrl_bench.grading import Grader
from ttrl_bench.measure.provenance import git_revision, library_versions, model_fingerprint
from ttrl_bench.measure.records import Record, write_record


def resolve_adapt(args, prep: Prepared) -> AdaptConfig:
    embedded = prep.model_dir.resolve() == EMBEDDED_MODEL.resolve()
    base = TINY if embedded else replace(PAPER, max_new_tokens=prep.params.max_new_tokens)
    cfg = with_overrides(
        base, steps=args.steps, prompts_per_step=args.prompts_per_step, samples=args.samples, votes=args.votes,
        learning_rate=args.lr, lr_scheduler=args.lr_scheduler, beta=args.beta, temperature=args.train_temperature,
        max_new_tokens=args.train_max_new_tokens, eval_every=args.eval_every, vllm_mode=args.vllm_mode,
        report_to=args.report_to, seed=args.seed,
        lora_r=getattr(args, "lora_r", None), lora_alpha=getattr(args, "lora_alpha", None),
        lora_targets=getattr(args, "lora_targets", None),
    )
    if args.use_vllm:
        cfg = replace(cfg, use_vllm=True)
    if cfg.steps == 0:  # the paper's epochs for this task
        cfg = replace(cfg, steps=paper_steps(prep.task.name, len(prep.questions), cfg.prompts_per_step))
    if args.votes is None and args.samples is not None:  # keep the profile's votes:samples ratio
        cfg = replace(cfg, votes=args.samples * base.votes // base.samples)
    cfg.validate()
    if args.processes < 1:
        raise UsageError(f"--processes: must be >= 1, got {args.processes}")
    per_device_batch(cfg, args.processes)  # the workers' layout check, before anything is measured or launched
    return cfg


def _launch(spec_path: Path, processes: int, accelerate_config: Path | None) -> None:
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


def run_from_args(args, eval_cfg) -> int:
    from ttrl_bench.report.plots import plot_training

    methods = parse_methods(args.methods)
    prep = prepare(eval_cfg)
    cfg = resolve_adapt(args, prep)
    identity = {**prep.identity, "adapt": {k: v for k, v in asdict(cfg).items() if k != "method"}}
    run_dir = args.out or default_out_dir(prep.task.name, prep.model_name, identity, "run")
    open_run_dir(run_dir, identity, {
        "identity": identity, "request": {**vars(args), "func": None}, "model_dir": str(prep.model_dir),
        "versions": library_versions(), "git_revision": git_revision(),
    })
    print(f"run directory: {run_dir}", file=sys.stderr)
    leaderboard = None if args.no_leaderboard else args.leaderboard
    kw = {"trust_remote_code": eval_cfg.trust_remote_code, "batch_size": eval_cfg.batch_size}
    records: dict[str, Record] = {}
    maj_key = f"maj@{prep.params.n}"

    with Grader(timeout_seconds=eval_cfg.grading_timeout) as grader:
        base = measure_into(run_dir / "base", prep, prep.model_dir, eval_cfg.backend, grader, "base: sampling", **kw)
        records["base"] = make_record(prep, base, method="base", run_dir=run_dir / "base")
        write_record(records["base"], run_dir / "base" / "records")
        for method in methods:
            mdir = run_dir / method
            mdir.mkdir(parents=True, exist_ok=True)
            mcfg = replace(cfg, method=method)
            model_out = mdir / "model"
            if not (model_out / "ADAPTED").exists():
                spec = AdaptSpec(
                    task=prep.task.name, model_dir=str(prep.model_dir), out_dir=str(mdir), config=asdict(mcfg),
                    eval_sampling=asdict(prep.params), chat_template=prep.chat_template, data=eval_cfg.data,
                    limit=eval_cfg.limit, trust_remote_code=eval_cfg.trust_remote_code,
                    grading_timeout=eval_cfg.grading_timeout, backend=eval_cfg.backend,
                )
                spec.write(mdir / "spec.json")
                print(f"{method}: adapting ({mcfg.steps} steps)", file=sys.stderr)
                if args.processes > 1 or args.accelerate_config is not None:
                    _launch(mdir / "spec.json", args.processes, args.accelerate_config)
                else:
                    adapt(spec)
            m = measure_into(mdir, prep, model_out, eval_cfg.backend, grader, f"{method}: sampling", **kw)
            log_rows = TrainLog.read(mdir / "train_log.jsonl")
            summary = train_summary(log_rows, maj_key, m, mcfg.steps, backend=eval_cfg.backend, start=base)
            # the last eval point is the final measurement, taken above with the base model's code
            sampled = "" if eval_cfg.backend == PROBE_BACKEND else \
                f"\nprobes sampled with {PROBE_BACKEND}; last point {mcfg.steps} with {eval_cfg.backend}"
            plot_training([*log_rows, summary["evals"][-1]], mdir / "training.png",
                          title=f"{prep.model_name} / {prep.task.name} / {method}{sampled}")
            write_json(mdir / "train_summary.json", summary)
            if summary.get("step_seconds_mean") is not None and summary.get("peak_memory_gib") is not None:
                print(f"{method}: {summary['step_seconds_mean']:.2f} s a step, peak memory "
                      f"{summary['peak_memory_gib']:.2f} GiB (main process)", file=sys.stderr)
            rec = make_record(
                prep, m, method=method, run_dir=mdir, method_config=asdict(mcfg),
                adapted_fingerprint=model_fingerprint(model_out),
                extra={k: v for k, v in summary.items() if k != "evals"},
            )
            records[method] = replace(rec, plots=["../training.png"])  # relative to the record's directory
            write_record(records[method], mdir / "records")

    table = comparison_table(records, maj_key=maj_key)
    (run_dir / "report.md").write_text(f"# {prep.model_name} on {prep.task.name}\n\n{table}\n")
    if leaderboard is not None:
        for rec in records.values():
            write_record(replace(rec, plots=_copy_plots(rec, run_dir / rec.method / "records", leaderboard)), leaderboard)
    print(table)
    print(f"\nrun directory: {run_dir}  (report: {run_dir / 'report.md'})")
    return 0
