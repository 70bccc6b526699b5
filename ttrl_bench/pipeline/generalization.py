"""``run --eval-tasks`` and ``run --holdout``: measure adaptation beyond the questions it trained on.

A plain-function/one-object interface that ``pipeline/run.py`` calls at a few marked hooks:

- transfer: after each adaptation the adapted model (and the base model, once) is also measured on
  each ``--eval-tasks`` task with the run's resolved sampling settings (same n, temperature, top-p,
  top-k, max new tokens, seed; the task's own prompt format; ``--limit`` applies, ``--data`` does not:
  it is the adapted task's file). Layout: RUN/transfer/<task>/{config.json, base/, <method>/}, each a
  resumable measurement directory with its own records/. The transfer directory has its own identity
  (task, data, sampling), so adding ``--eval-tasks`` to a finished run reuses its models and measures
  only what is new.
- holdout: ``--holdout F --holdout-seed S`` splits the task's questions (data.split); every method's
  adaptation (leakage RL too) gets only the adapted part through ``AdaptSpec``; the base and adapted
  models are still measured on all questions, and the report splits each result into its two parts.
  The split is part of the run's identity and of every adapted record (``Record.holdout``).
- the vote baseline: the base model is sampled max(N, votes) times (pipeline.vote_baseline).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ttrl_bench.data.split import Split, split_ids
from ttrl_bench.errors import UsageError
from ttrl_bench.grading import Grader
from ttrl_bench.measure.loop import Measurement, chunk_size_for
from ttrl_bench.measure.provenance import model_fingerprint
from ttrl_bench.measure.records import Record, write_record
from ttrl_bench.measure.rundir import open_run_dir
from ttrl_bench.measure.subsets import only_questions
from ttrl_bench.pipeline.config import EvalConfig, Prepared, prepare
from ttrl_bench.pipeline.evaluate import make_record, measure_into
from ttrl_bench.pipeline.vote_baseline import base_samples, identity_with_base_samples, measure_base
from ttrl_bench.report.generalization import generalization_table, holdout_table

TRANSFER_DIR = "transfer"


def parse_eval_tasks(text: str | None, main_task: str) -> tuple[str, ...]:
    if text is None:
        return ()
    names = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not names:
        raise UsageError("--eval-tasks: expected comma-separated task names, got nothing")
    if main_task in names:
        raise UsageError(f"--eval-tasks: {main_task!r} is the task adapted on (always measured); expected other tasks")
    return names


def _prepare_other(eval_cfg: EvalConfig, task: str, params) -> Prepared:
    try:
        other = prepare(replace(eval_cfg, task=task, data=None))
    except UsageError as exc:  # name the flag the user typed, not the internal --task
        raise UsageError(str(exc).replace("--task", "--eval-tasks", 1)) from None
    identity = {**other.identity, "sampling": asdict(params), "chunk": chunk_size_for(params.n)}
    return replace(other, params=params, identity=identity)


@dataclass
class Generalization:
    prep: Prepared  # the adapted task
    votes: int
    others: list[Prepared]
    split: Split | None
    base_measurement: Measurement | None = None  # the base model's N-sample view, once measured

    # --- setup (before the run directory is opened: bad flags exit 2 with nothing written) -------------

    @classmethod
    def plan(cls, eval_cfg: EvalConfig, prep: Prepared, votes: int, *, eval_tasks: str | None = None,
             holdout: float | None = None, holdout_seed: int | None = None) -> "Generalization":
        if holdout is None and holdout_seed is not None:
            raise UsageError("--holdout-seed: needs --holdout FRACTION")
        split = None
        if holdout is not None:
            split = split_ids([q.id for q in prep.questions], holdout, 0 if holdout_seed is None else holdout_seed)
        names = parse_eval_tasks(eval_tasks, prep.task.name)
        others = [_prepare_other(eval_cfg, t, prep.params) for t in names]
        return cls(prep=prep, votes=votes, others=others, split=split)

    def extend_identity(self, identity: dict) -> dict:
        """The run identity plus what changes the run's own results (base sample count, split).
        The eval tasks are not in it: they live in their own directories with their own identity."""
        identity = identity_with_base_samples(identity, self.prep.params.n, self.votes)
        if self.split is not None:
            identity["holdout"] = {"fraction": self.split.fraction, "seed": self.split.seed}
        return identity

    # --- hooks ------------------------------------------------------------------------------------------

    def base_record(self, directory: Path, backend: str, grader: Grader, **kw) -> Record:
        """The base model on the adapted task, with the vote baseline."""
        desc = f"base: sampling {base_samples(self.prep.params.n, self.votes)}/q"
        rec, self.base_measurement = self._base(self.prep, directory, backend, grader, desc, **kw)
        return rec

    def _base(self, prep: Prepared, directory: Path, backend: str, grader: Grader, desc: str, **kw) -> tuple[Record, Measurement]:
        view, extra_metrics, baseline = measure_base(directory, prep, self.votes, backend, grader, desc, **kw)
        rec = make_record(prep, view, method="base", run_dir=directory, extra={"vote_baseline": baseline})
        rec = replace(rec, metrics={**rec.metrics, **extra_metrics})
        write_record(rec, directory / "records")
        return rec, view

    def _transfer_dir(self, run_dir: Path, other: Prepared) -> Path:
        directory = run_dir / TRANSFER_DIR / other.task.name
        identity = identity_with_base_samples(other.identity, other.params.n, self.votes)
        open_run_dir(directory, identity, {"identity": identity, "model_dir": str(other.model_dir),
                                           "adapted_on": self.prep.task.name})
        return directory

    def other_bases(self, run_dir: Path, backend: str, grader: Grader, **kw) -> list[Record]:
        """The base model on each eval task, once."""
        return [
            self._base(o, self._transfer_dir(run_dir, o) / "base", backend, grader, f"base on {o.task.name}: sampling", **kw)[0]
            for o in self.others
        ]

    def spec_fields(self) -> dict:
        """AdaptSpec fields: the adaptation trains on the adapted part only."""
        if self.split is None:
            return {}
        return {"holdout_fraction": self.split.fraction, "holdout_seed": self.split.seed}

    def record_fields(self) -> dict:
        """Fields of every adapted record of this run."""
        return {} if self.split is None else {"holdout": self.split.as_dict()}

    def in_sample(self, m: Measurement) -> Measurement:
        """The part of a measurement adaptation trained on (all of it without a split)."""
        return m if self.split is None else only_questions(m, self.split.adapted)

    def other_methods(self, run_dir: Path, method: str, model_dir: Path, method_config: dict, backend: str,
                      grader: Grader, **kw) -> list[Record]:
        """The adapted model on each eval task: one record per (adapted on, measured on, method)."""
        out = []
        fingerprint = model_fingerprint(model_dir)
        for o in self.others:
            directory = self._transfer_dir(run_dir, o) / method
            m = measure_into(directory, o, model_dir, backend, grader, f"{method} on {o.task.name}: sampling", **kw)
            rec = make_record(o, m, method=method, run_dir=directory, method_config=method_config,
                              adapted_fingerprint=fingerprint, adapted_on=self.prep.task.name, **self.record_fields())
            write_record(rec, directory / "records")
            out.append(rec)
        return out

    def report(self, main: list[Record], transfer: list[Record], maj_key: str) -> str:
        """The report's generalization sections (markdown)."""
        parts = ["## Adapted on / measured on (with the base model's vote baseline)\n",
                 generalization_table([*main, *transfer], maj_key=maj_key)]
        if self.split is not None:
            parts += [f"\n## Held-out questions (--holdout {self.split.fraction:g}, --holdout-seed {self.split.seed})\n",
                      holdout_table(main, self.split.held_out, maj_key=maj_key)]
        return "\n".join(parts) + "\n"
