"""The CI regression gate: is a run significantly worse than a baseline on the same questions?

Records are paired by (task, method). For each pair the per-question scores of the
metric are compared with ttrl_bench.report.stats.paired_difference (paired sign-flip
permutation test over questions). Both records must come from the same sampling settings
(n, temperature, top-p, top-k, max new tokens; the seed may differ) unless
``allow_different_sampling``. A pair is a *regression* when the one-sided test says the run is worse
at level alpha (p_worse < alpha) and the observed drop exceeds ``min_effect``
points; an *improvement* is the mirror image. The exit code is 1 when any pair
regressed, else 0; inputs that cannot be compared raise UsageError (exit code 2).
Pairs present on only one side are listed as not compared; no pair at all is an error.
A baseline directory with several models is narrowed to one (see ``check``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from tabulate import tabulate

from ttrl_bench.report.stats import LOWER_IS_BETTER, PairedDiff, paired_difference, parse_metric, per_question_metric
from ttrl_bench.errors import UsageError
from ttrl_bench.report.leaderboard import markdown_escape
from ttrl_bench.measure.records import Record

REGRESSION = "regression"
IMPROVEMENT = "improvement"
NO_CHANGE = "no significant change"


@dataclass(frozen=True)
class CheckRow:
    task: str
    method: str
    baseline_model: str
    run_model: str
    baseline_mean: float  # fraction, mean of the per-question scores
    run_mean: float
    diff: PairedDiff  # run - baseline
    verdict: str
    origin: str = ""  # "adapted on X" / "holdout F seed S" (Record.origin); "" for the task's own adaptation


@dataclass(frozen=True)
class CheckResult:
    metric: str
    alpha: float
    min_effect: float  # points
    n_boot: int
    rows: tuple[CheckRow, ...]
    not_compared: tuple[str, ...]  # "task / method (only in baseline)" etc.

    @property
    def regressions(self) -> tuple[CheckRow, ...]:
        return tuple(r for r in self.rows if r.verdict == REGRESSION)

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions else 0


def check(
    baseline: list[Record],
    run: list[Record],
    *,
    metric: str = "pass@1",
    alpha: float = 0.05,
    min_effect: float = 0.0,
    baseline_model: str | None = None,
    n_boot: int = 10000,
    seed: int = 0,
    allow_different_sampling: bool = False,
) -> CheckResult:
    """Compare ``run`` against ``baseline``, pair by pair; see the module docstring for the rule.

    A baseline holding several models (a whole leaderboard directory) is narrowed to
    ``baseline_model`` if given, else to the run's own model name(s).
    """
    parse_metric(metric)
    if not 0.0 < alpha < 0.5:
        raise UsageError(f"--alpha {alpha}: expected a level in (0, 0.5)")
    if not min_effect >= 0.0:
        raise UsageError(f"--min-effect {min_effect}: expected points >= 0")
    base_by_key = _by_task_method(_select_baseline(baseline, run, baseline_model), "--baseline")
    run_by_key = _by_task_method(run, "--run")
    common = [k for k in base_by_key if k in run_by_key]
    if not common:
        raise UsageError(
            f"--run: no (task, method) in common with --baseline (baseline has {_keys(base_by_key)}; run has {_keys(run_by_key)})"
        )
    if not allow_different_sampling:
        for k in common:
            _check_same_sampling(base_by_key[k], run_by_key[k])
    rows = tuple(
        _compare_pair(base_by_key[k], run_by_key[k], metric, alpha, min_effect, n_boot, seed) for k in common
    )
    not_compared = tuple(
        [f"{t} / {m}{_origin(o)} (only in baseline)" for t, m, o in base_by_key if (t, m, o) not in run_by_key]
        + [f"{t} / {m}{_origin(o)} (only in run)" for t, m, o in run_by_key if (t, m, o) not in base_by_key]
    )
    return CheckResult(metric, alpha, min_effect, n_boot, rows, not_compared)


def _select_baseline(baseline: list[Record], run: list[Record], baseline_model: str | None) -> list[Record]:
    models = sorted({r.model for r in baseline})
    if baseline_model is not None:
        chosen = [r for r in baseline if r.model == baseline_model]
        if not chosen:
            raise UsageError(f"--baseline-model {baseline_model!r}: no such model in --baseline (it has {_names(models)})")
        return chosen
    if len(models) <= 1:
        return baseline
    run_models = {r.model for r in run}
    chosen = [r for r in baseline if r.model in run_models]
    if not chosen:
        raise UsageError(f"--baseline holds {len(models)} models ({_names(models)}); choose one with --baseline-model")
    return chosen


def _names(models: list[str]) -> str:
    return ", ".join(repr(m) for m in models)


def _by_task_method(records: list[Record], flag: str) -> dict[tuple[str, str, str], Record]:
    # (measured-on task, method, origin): transfer and held-out results pair only with their own kind
    by_key: dict[tuple[str, str, str], Record] = {}
    for r in sorted(records, key=lambda r: (r.task, r.method, r.origin)):
        key = (r.task, r.method, r.origin)
        if key in by_key:
            raise UsageError(
                f"{flag}: two records for task {r.task!r}, method {r.method!r}"
                + (f" ({r.origin})" if r.origin else "") + " "
                f"(models {by_key[key].model!r} and {r.model!r})"
            )
        by_key[key] = r
    if not by_key:
        raise UsageError(f"{flag}: no records")
    return by_key


def _origin(origin: str) -> str:
    return f" [{origin}]" if origin else ""


def _keys(by_key: dict[tuple[str, str, str], Record]) -> str:
    return ", ".join(f"{t}/{m}" + (f" ({o})" if o else "") for t, m, o in by_key)


def _check_same_sampling(base: Record, run: Record) -> None:
    """A T=0 candidate gated against a T=0.6 baseline measures the settings, not the model."""
    differ = sorted(k for k in set(base.sampling) | set(run.sampling)
                    if k != "seed" and base.sampling.get(k) != run.sampling.get(k))
    if differ:
        k = differ[0]
        raise UsageError(
            f"--run: task {base.task!r}, method {base.method!r}: sampling {k} {run.sampling.get(k)!r} differs from "
            f"the baseline's {base.sampling.get(k)!r}; measure with the baseline's settings or pass --allow-different-sampling"
        )


def _compare_pair(
    base: Record, run: Record, metric: str, alpha: float, min_effect: float, n_boot: int, seed: int
) -> CheckRow:
    where = f"task {base.task!r}, method {base.method!r}" + (f" ({base.origin})" if base.origin else "")
    if base.data_fingerprint != run.data_fingerprint:
        raise UsageError(
            f"--run: {where}: data_fingerprint {run.data_fingerprint!r} differs from the baseline's "
            f"{base.data_fingerprint!r} (different question sets)"
        )
    a = per_question_metric(base, metric)
    b = per_question_metric(run, metric)
    if a.keys() != b.keys():
        only_base = sorted(a.keys() - b.keys())
        only_run = sorted(b.keys() - a.keys())
        raise UsageError(
            f"--run: {where}: question ids differ from the baseline's "
            f"({len(only_base)} only in baseline, e.g. {only_base[:1]}; {len(only_run)} only in run, e.g. {only_run[:1]})"
        )
    ids = list(a)
    a_scores = [a[i] for i in ids]
    b_scores = [b[i] for i in ids]
    diff = paired_difference(a_scores, b_scores, n_boot=n_boot, seed=seed, alpha=2 * alpha)
    if metric in LOWER_IS_BETTER:  # a rise in regret is the regression: test the mirrored scores
        mirrored = paired_difference([-x for x in a_scores], [-x for x in b_scores], n_boot=n_boot, seed=seed,
                                     alpha=2 * alpha)
        diff = replace(diff, p_worse=mirrored.p_worse, p_better=mirrored.p_better)
        drop_points = 100.0 * diff.mean_diff
    else:
        drop_points = -100.0 * diff.mean_diff
    if diff.p_worse < alpha and drop_points > min_effect:
        verdict = REGRESSION
    elif diff.p_better < alpha and -drop_points > min_effect:
        verdict = IMPROVEMENT
    else:
        verdict = NO_CHANGE
    return CheckRow(
        task=base.task,
        method=base.method,
        baseline_model=base.model,
        run_model=run.model,
        baseline_mean=sum(a_scores) / len(a_scores),
        run_mean=sum(b_scores) / len(b_scores),
        diff=diff,
        verdict=verdict,
        origin=base.origin,
    )


# --- rendering -------------------------------------------------------------------------


def render_check(result: CheckResult, fmt: str = "text") -> str:
    """A verdict table: fmt "text" for a terminal, "markdown" for a CI job summary."""
    if fmt not in ("text", "markdown"):
        raise UsageError(f"--format {fmt!r}: expected text or markdown")
    markdown = fmt == "markdown"
    esc = markdown_escape if markdown else str
    ci_level = f"{100 * (1 - 2 * result.alpha):g}% CI"
    headers = ["task", "method", "questions", "baseline", "run", "diff (run - baseline)", ci_level,
               "p worse", "p better", "verdict"]
    rows = []
    for r in result.rows:
        d = r.diff
        verdict = f"**{r.verdict}**" if markdown and r.verdict == REGRESSION else r.verdict
        rows.append([
            esc(r.task), esc(r.method + (f" ({r.origin})" if r.origin else "")), str(d.n_questions),
            f"{100 * r.baseline_mean:.1f}", f"{100 * r.run_mean:.1f}",
            f"{100 * d.mean_diff:+.1f} ± {100 * d.stderr:.1f}",
            f"[{100 * d.ci_low:+.1f}, {100 * d.ci_high:+.1f}]",
            _p(d.p_worse), _p(d.p_better), verdict,
        ])
    colalign = ["left", "left"] + ["right"] * 7 + ["left"]
    table = tabulate(rows, headers, tablefmt="pipe" if markdown else "simple", colalign=colalign, disable_numparse=True)

    n_reg = len(result.regressions)
    comparisons = f"{len(result.rows)} comparison" + ("s" if len(result.rows) != 1 else "")
    if n_reg:
        status = f"REGRESSION in {n_reg} of {comparisons} (exit 1)"
    else:
        status = f"no significant regression in {comparisons} (exit 0)"
    baseline_models = ", ".join(sorted({esc(r.baseline_model) for r in result.rows}))
    run_models = ", ".join(sorted({esc(r.run_model) for r in result.rows}))
    method_note = (
        f"{result.metric} in points; paired sign-flip permutation test over questions "
        f"(up to {result.n_boot} sign flips; interval: paired bootstrap); "
        f"regression = one-sided p worse < {result.alpha:g} and drop > {result.min_effect:g} points"
    )
    if result.metric in LOWER_IS_BETTER:
        method_note += f"; {result.metric} is better when lower, so a rise is the regression"
    lines = []
    if markdown:
        mark = "❌" if n_reg else "✅"
        lines += [f"### {mark} ttrl-bench check: {status}", "",
                  f"Baseline: {baseline_models} · run: {run_models}. {method_note}.", "", table]
        if result.not_compared:
            lines += ["", "Not compared: " + "; ".join(esc(s) for s in result.not_compared) + "."]
    else:
        lines += [f"ttrl-bench check: baseline {baseline_models} vs run {run_models}", method_note, "", table, ""]
        if result.not_compared:
            lines += ["not compared: " + "; ".join(result.not_compared)]
        lines += [f"result: {status}"]
    return "\n".join(lines) + "\n"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


