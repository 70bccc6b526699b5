"""``ttrl-bench budget``: budget-forced curves and cumulative regret for one model, or for every
model of a ``run`` directory (base and each adapted model), from the samples ``eval`` made.

One model: the eval run directory is made or resumed first (same flags, same directory as
``ttrl-bench eval``), then RUN/budget-<hash>/ holds config.json, forced.jsonl (the forced
answers, resumable), curves.json and budget.png; the eval record gains the budget metrics
(``budget-acc``, ``regret``, ``oracle-regret``, ``tokens-to-90``) and the per-question values
``check`` pairs on. With ``--run RUN`` every measured model of that run is done the same way
in RUN/<method>/budget-<hash>/, and a comparison with paired standard errors is printed.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ttrl_bench.errors import UsageError
from ttrl_bench.grading import Grader
from ttrl_bench.measure.budget import (
    budget_curves, budget_metrics, cut_samples, force_answers, render_all, unwritable,
)
from ttrl_bench.measure.budget_cuts import default_budgets
from ttrl_bench.measure.provenance import config_hash, library_versions, model_fingerprint
from ttrl_bench.measure.records import Record, load_records, write_record
from ttrl_bench.measure.rundir import open_run_dir, write_json
from ttrl_bench.measure.store import SampleStore
from ttrl_bench.pipeline.config import EvalConfig, Prepared, prepare, sampler_options
from ttrl_bench.sampling import make_sampler
from ttrl_bench.sampling.shared import SharedSampler
from ttrl_bench.types import Completion, QuestionGrade


@dataclass(frozen=True)
class BudgetConfig:
    budgets: tuple[int, ...] | None = None  # None: powers of two up to the generation limit
    forced_answers: int = 4  # m: forced answers per prefix
    prover: str | None = None  # None: the measured model itself
    samples: int | None = None  # eval samples per question that are cut (None: all)


def parse_budgets(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise UsageError(f"--budgets {text!r}: expected comma-separated positive integers, e.g. 4,8,16") from None
    if not values or values[0] < 1:
        raise UsageError(f"--budgets {text!r}: expected comma-separated positive integers, e.g. 4,8,16")
    return tuple(values)


def check_config(bcfg: BudgetConfig) -> None:
    if bcfg.forced_answers < 1:
        raise UsageError(f"--forced-answers: must be >= 1, got {bcfg.forced_answers}")
    if bcfg.samples is not None and bcfg.samples < 1:
        raise UsageError(f"--budget-samples: must be >= 1, got {bcfg.samples}")
    if bcfg.prover is not None:
        path = Path(bcfg.prover).expanduser()
        if not (path / "config.json").is_file():
            raise UsageError(f"--prover: {bcfg.prover!r} is not a local model directory with config.json")


def budget_one(directory: Path, prep: Prepared, model_dir: Path, backend: str, bcfg: BudgetConfig,
               completions: list[list[Completion]], grades: list[QuestionGrade], grader: Grader,
               *, progress: bool = True, prover_sampler: SharedSampler | None = None, **sampler_kwargs) -> dict:
    """Curves for one measured model whose eval samples and grades are given; writes ``directory``.

    The forced answers come from ``prover_sampler`` when given (the prover already loaded: the
    measured model after its eval, or ``--prover`` shared by the members of a run), else from a
    sampler of the prover built with ``sampler_kwargs`` (the eval's options: dtype, BOS, engine).
    The prefixes are text, cut with the measured model's tokenizer; a prover with another
    tokenizer re-tokenises prompt + prefix + suffix with its own."""
    from transformers import AutoTokenizer

    settings = prep.task.budget
    grid = [0, *(bcfg.budgets or default_budgets(prep.params.max_new_tokens))]
    used = bcfg.samples or prep.params.n
    prover = Path(bcfg.prover).expanduser() if bcfg.prover else model_dir
    forced_params = replace(prep.params, n=bcfg.forced_answers, max_new_tokens=settings.forced_max_tokens)
    identity = {
        "eval": prep.identity, "model_fingerprint": model_fingerprint(model_dir), "grid": grid, "samples": used,
        "prover_fingerprint": model_fingerprint(prover), "forced_sampling": asdict(forced_params),
        "settings": asdict(settings), "backend": backend,
    }
    if settings.joins_on_whitespace:  # forced prompts made since prefixes lose trailing whitespace: never mixed
        identity["join"] = "prefix-rstrip"
    trust = sampler_kwargs.get("trust_remote_code", False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust)
    cuts = [cut_samples(tokenizer, comps[:used], settings, grid) for comps in completions]
    rendered = render_all(tokenizer, prep.questions, prep.chat_template)
    if prover != model_dir:  # before the budget directory exists: a refused prover leaves nothing behind
        _check_prover_vocabulary(AutoTokenizer.from_pretrained(prover, trust_remote_code=trust), bcfg.prover,
                                 prep.questions, rendered, cuts, settings.forced_suffix)
    out = directory / f"budget-{config_hash(identity)}"
    open_run_dir(out, identity, {"identity": identity, "request": asdict(bcfg), "model_dir": str(model_dir),
                                 "prover": str(prover), "versions": library_versions()})
    forced = force_answers(
        prep.questions, rendered, cuts, settings=settings,
        sampler_factory=prover_sampler.get if prover_sampler is not None else lambda: make_sampler(backend, prover, **sampler_kwargs),
        params=forced_params,
        answer_type=prep.task.answer_type, grader=grader, store=SampleStore(out / "forced.jsonl"), progress=progress,
    )
    curves = budget_curves(prep.questions, grades, completions, cuts, forced, grid)
    curves["prover"] = {"model_dir": str(prover), "fingerprint": identity["prover_fingerprint"],
                        "self": prover == model_dir}
    write_json(out / "curves.json", curves)
    from ttrl_bench.report.budget_plot import plot_budget

    plot_budget({"": curves}, out / "budget.png", title=f"{prep.model_name} / {prep.task.name}")
    curves["dir"] = str(out)
    return curves


def check_prover_on_prompts(prep: Prepared, bcfg: BudgetConfig, trust_remote_code: bool) -> None:
    """Before any sampling: a ``--prover`` that cannot write the prompts and the forced suffix
    (the outputs are checked once there are some, in ``budget_one``)."""
    if bcfg.prover is None or Path(bcfg.prover).expanduser() == prep.model_dir:
        return
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(prep.model_dir, trust_remote_code=trust_remote_code)
    prover = AutoTokenizer.from_pretrained(Path(bcfg.prover).expanduser(), trust_remote_code=trust_remote_code)
    rendered = render_all(tokenizer, prep.questions, prep.chat_template)
    _check_prover_vocabulary(prover, bcfg.prover, prep.questions, rendered, [[] for _ in rendered],
                             prep.task.budget.forced_suffix)


def _check_prover_vocabulary(prover_tokenizer, name, questions, rendered, cuts, suffix: str) -> None:
    """A prover whose tokenizer can write some text of the forced prompts only as its unknown token
    would answer a different question: refuse it, naming the first such character."""
    for q, prompt, per_sample in zip(questions, rendered, cuts):
        texts = [prompt + suffix, *(sc.budget[-1].prefix for sc in per_sample), *(sc.episodes[-1].prefix for sc in per_sample)]
        found = unwritable(prover_tokenizer, texts)
        if found is not None:
            raise UsageError(f"--prover {name}: its tokenizer has no token for {found!r} (in the forced prompts of "
                             f"question {q.id}); expected a prover whose tokenizer can write the measured model's "
                             "prompts and outputs")


def with_budget(record: Record, curves: dict, plot: str) -> Record:
    """The record with the budget metrics and per-question values added (pass@k etc. untouched)."""
    per_q = curves["per_question"]
    extra = {**record.extra, "budget": {
        "grid": curves["grid"], "accuracy": curves["accuracy"], "regret": curves["regret"],
        "regret_oracle": curves["regret_oracle"], "prover": curves.get("prover"),
        "per_question": {"budget-acc": dict(zip(per_q["ids"], per_q["accuracy_final"])),
                         "regret": dict(zip(per_q["ids"], per_q["regret"])),
                         "oracle-regret": dict(zip(per_q["ids"], per_q["regret_oracle"]))},
    }}
    return replace(record, metrics={**record.metrics, **budget_metrics(curves)}, extra=extra,
                   plots=[*[p for p in record.plots if not p.endswith("budget.png")], plot])


def read_grades(path: Path) -> list[QuestionGrade]:
    return [QuestionGrade(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def run_budget(cfg: EvalConfig, bcfg: BudgetConfig, out: Path | None = None, leaderboard: Path | None = None,
               progress: bool = True) -> tuple[Path, dict]:
    """``budget`` for one model: eval (made or resumed), then the curves; returns (budget dir, curves)."""
    from ttrl_bench.pipeline.evaluate import AUTO, evaluate

    check_config(bcfg)
    prep = prepare(cfg)
    _check_task(prep)
    check_prover_on_prompts(prep, bcfg, cfg.trust_remote_code)
    kw = sampler_options(cfg, prep)
    # one model load (one vLLM engine) for the eval's samples and the forced answers, when it proves itself
    with SharedSampler(lambda: make_sampler(cfg.backend, prep.model_dir, **kw)) as model:
        result = evaluate(cfg, out or AUTO, progress=progress, sampler_factory=model.get)
        run_dir, m, record = result.run_dir, result, result.record
        with Grader(timeout_seconds=cfg.grading_timeout) as grader:
            curves = budget_one(run_dir, prep, prep.model_dir, cfg.backend, bcfg, m.completions, m.grades, grader,
                                progress=progress, prover_sampler=None if bcfg.prover else model, **kw)
    rec = with_budget(record, curves, str(Path("..") / Path(curves["dir"]).name / "budget.png"))
    write_record(rec, run_dir / "records")
    if leaderboard is not None:
        to_leaderboard(rec, run_dir / "records", leaderboard)
    return Path(curves["dir"]), curves


def to_leaderboard(rec: Record, record_dir: Path, leaderboard: Path) -> None:
    """Write ``rec`` to the leaderboard with its plots copied next to it (paths relative to it)."""
    plots = []
    for rel in rec.plots:
        src = (record_dir / rel).resolve()
        if src.exists():
            dest = leaderboard / "plots" / f"{Path(rec.filename).stem}-{src.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            plots.append(str(dest.relative_to(leaderboard)))
    write_record(replace(rec, plots=plots), leaderboard)


def run_budget_over_run(cfg: EvalConfig, bcfg: BudgetConfig, run_dir: Path, leaderboard: Path | None = None,
                        progress: bool = True) -> dict[str, dict]:
    """``budget --run RUN``: every measured model of a ``run`` directory (base first)."""
    check_config(bcfg)
    prep = prepare(cfg)
    _check_task(prep)
    check_prover_on_prompts(prep, bcfg, cfg.trust_remote_code)
    try:
        identity = json.loads((run_dir / "config.json").read_text())["identity"]
    except (OSError, ValueError, KeyError):
        raise UsageError(f"--run {run_dir}: not a ttrl-bench run directory (no readable config.json)") from None
    for key, value in prep.identity.items():
        if identity.get(key) != value:
            raise UsageError(f"--run {run_dir}: was made with a different {key} ({identity.get(key)!r} vs {value!r}); "
                             "pass the eval flags the run used")
    members = ["base", *sorted(p.name for p in run_dir.iterdir() if p.is_dir() and (p / "model" / "ADAPTED").exists())]
    results: dict[str, dict] = {}
    kw = sampler_options(cfg, prep)
    # a --prover answers for every member: loaded once (on first use), closed at the end
    prover = SharedSampler(lambda: make_sampler(cfg.backend, Path(bcfg.prover).expanduser(), **kw)) if bcfg.prover else None
    with Grader(timeout_seconds=cfg.grading_timeout) as grader, prover or contextlib.nullcontext():
        for name in members:
            sub = run_dir / name
            if not (sub / "grades.jsonl").exists():
                continue  # not measured yet (an interrupted run): nothing to cut
            done = SampleStore(sub / "samples.jsonl").done()
            completions = [done[q.id] for q in prep.questions]
            grades = read_grades(sub / "grades.jsonl")
            model_dir = prep.model_dir if name == "base" else sub / "model"
            start = time.perf_counter()
            curves = budget_one(sub, prep, model_dir, cfg.backend, bcfg, completions, grades, grader,
                                progress=progress, prover_sampler=prover, **kw)
            curves["wall_seconds"] = time.perf_counter() - start
            for rec in load_records(sub / "records"):
                rec = with_budget(rec, curves, str(Path("..") / Path(curves["dir"]).name / "budget.png"))
                write_record(rec, sub / "records")
                if leaderboard is not None:
                    to_leaderboard(rec, sub / "records", leaderboard)
            results[name] = curves
    return results


def _check_task(prep: Prepared) -> None:
    if not prep.task.budget.forced_suffix:
        raise UsageError(f"--task {prep.task.name}: field 'budget.forced_suffix' is empty; "
                         "budget forcing needs a suffix that makes the model answer")
