"""PNG plots of a run's training log and of a leaderboard (matplotlib, Agg canvas).

Figures are built with matplotlib.figure.Figure directly, not pyplot: no global
figure registry or backend switch, so plotting is safe inside a long-running
process and never tries to open a window.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ttrl_bench.report.stats import parse_metric
from ttrl_bench.errors import UsageError
from ttrl_bench.adapt.methods import colour, display_name, sort_methods
from ttrl_bench.adapt.train_log import LogRow, ProbeRow, TrainStep
from ttrl_bench.measure.records import Record

_EVAL_KEY = re.compile(r"(pass|maj)@[1-9][0-9]*")
_SIGNAL_KEYS = ("label_accuracy", "reward_accuracy", "reward_mean")


def plot_training(train_log: Sequence[LogRow], path: Path, *, title: str) -> Path:
    """Evaluation scores (pass@k, maj@N) and training signals (label/reward accuracy, mean reward) vs step.

    Rows may hold any subset of the keys (evaluation runs only every few steps);
    a key is drawn from the rows that have a finite number for it. Panels with
    nothing to draw are left out; a log with nothing at all gives a labelled empty plot.
    """
    probes = [(r.step, r.scores) for r in train_log if isinstance(r, ProbeRow)]
    steps = [(r.step, r.values) for r in train_log if isinstance(r, TrainStep)]
    eval_keys = sorted({k for _, scores in probes for k in scores if _EVAL_KEY.fullmatch(k)}, key=_eval_order)
    signal_keys = [k for k in _SIGNAL_KEYS if any(k in values for _, values in steps)]
    panels = [(series, label) for series, label in (
        ([_series(probes, k) for k in eval_keys], "evaluation"),
        ([_series(steps, k) for k in signal_keys], "training signal"),
    ) if series]

    fig = Figure(figsize=(7, 2.6 * max(1, len(panels)) + 0.6), layout="constrained")
    fig.suptitle(_literal(title))
    if not panels:
        ax = fig.subplots()
        ax.text(0.5, 0.5, "no metrics logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("step")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0] if panels else []
    for ax, (series, label) in zip(axes, panels):
        for key, xs, ys in series:
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=key)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    if panels:
        axes[-1].set_xlabel("step")
    return _save(fig, path)


def _eval_order(key: str) -> tuple[int, int]:
    kind, k = key.split("@")
    return (0 if kind == "pass" else 1, int(k))


def _series(rows: Sequence[tuple[int, Mapping[str, float]]], key: str) -> tuple[str, list[float], list[float]]:
    """(key, steps, values) of the (step, numbers) rows that hold a finite number for ``key``."""
    points = []
    for step, numbers in rows:
        value = numbers.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            points.append((step, value))
    points.sort()
    return key, [s for s, _ in points], [v for _, v in points]


def plot_leaderboard(records: Sequence[Record], path: Path, *, metric: str = "pass@1") -> Path:
    """Grouped bars per task (base / TTRL / leakage, then other methods) with ± stderr bars; one panel per model."""
    parse_metric(metric)
    usable = [r for r in records if metric in r.metrics]
    if not usable:
        raise UsageError(f"--metric {metric}: no record has it")
    models = sorted({r.model for r in usable}, key=lambda m: (m.casefold(), m))
    present = {r.method for r in usable}
    methods = sort_methods(present)
    tasks = sorted({r.task for r in usable})
    by_key = {(r.model, r.task, r.method): r.metrics[metric] for r in usable}

    colors = {m: colour(m) for m in methods}  # the registry's colours, as in every other figure
    fig = Figure(figsize=(max(5.0, 1.2 + 0.45 * len(tasks) * len(methods)), 2.6 * len(models) + 0.8), layout="constrained")
    axes = fig.subplots(len(models), 1, squeeze=False)[:, 0]
    width = 0.8 / len(methods)
    legend: dict[str, object] = {}  # one figure legend: every method once, in method order
    for ax, model in zip(axes, models):
        for j, method in enumerate(methods):
            xs, heights, errors = [], [], []
            for i, task in enumerate(tasks):
                entry = by_key.get((model, task, method))
                if entry is None:
                    continue
                xs.append(i - 0.4 + width * (j + 0.5))
                heights.append(100 * float(entry["mean"]))
                errors.append(100 * float(entry.get("stderr", 0.0)))
            if xs:
                bars = ax.bar(xs, heights, width, yerr=errors, capsize=2, color=colors[method])
                legend.setdefault(method, bars)
        ax.set_xticks(range(len(tasks)), [_literal(t) for t in tasks])
        ax.set_xlim(-0.5, len(tasks) - 0.5)
        ax.set_ylabel(f"{metric} (points)")
        ax.set_title(_literal(model), fontsize="medium")
        ax.grid(axis="y", alpha=0.3)
    ordered = [m for m in methods if m in legend]
    labels = [_literal(display_name(m)) for m in ordered]
    fig.legend([legend[m] for m in ordered], labels, loc="outside upper center", ncols=min(4, len(ordered)), fontsize="small")
    return _save(fig, path)


def _literal(text: str) -> str:
    """Text from a record shown as typed: '$' would otherwise start matplotlib mathtext (and can fail to parse)."""
    return text.replace("$", r"\$")


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(path)
    return path
