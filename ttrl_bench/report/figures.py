"""Paper figures per task, one paper column wide (3.3 in): curves, pass@k, levels, labels.

Each ``draw_*`` function returns a ``Drawn``: the matplotlib Figure and the series it
drew, keyed by panel, so callers (and tests) know what a figure shows without reading
pixels. ``write_task_figures`` saves every figure a task supports as PNG (for pages)
and PDF (vector, for LaTeX). Colours, names and order of methods come from the
methods registry (``adapt.methods``), so a method looks the same in every figure.
Figures are built on matplotlib.figure.Figure directly (no pyplot global state).
"""
from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from ttrl_bench.adapt.methods import colour, display_name
from ttrl_bench.measure.records import Record
from ttrl_bench.report import figure_data as D

WIDTH_IN = 3.3  # one column of a two-column paper
PNG_DPI = 200
KINDS = ("curves", "pass_at_k", "levels", "labels")
# Small type: at 3.3 in a 7 pt label is as large as the paper's own footnotes.
_STYLE = {
    "font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "legend.fontsize": 6.5,
    "xtick.labelsize": 6.5, "ytick.labelsize": 6.5, "lines.linewidth": 1.2, "axes.linewidth": 0.6,
    "grid.linewidth": 0.4, "pdf.fonttype": 42,  # TrueType in the PDF: text stays text for LaTeX and search
    "svg.fonttype": "none",
}


@dataclass
class Drawn:
    figure: Figure
    series: dict[str, list[D.Series]] = field(default_factory=dict)  # panel name -> what it shows


def _literal(text: str) -> str:
    """Text from a record shown as typed: '$' would otherwise start mathtext (and can fail to parse)."""
    return text.replace("$", r"\$")


def _label(method: str) -> str:
    return "base" if method == "base" else _literal(display_name(method))


def _style(method: str) -> dict:
    # leakage is the upper reference (true labels), drawn dashed so it reads as a bound, not a competitor
    return {"color": colour(method), "linestyle": "--" if method == "leakage" else "-", "label": _label(method)}


def _figure(rows: int, row_height: float) -> Figure:
    return Figure(figsize=(WIDTH_IN, 0.45 + row_height * rows), layout="constrained")


def _legend(fig: Figure, axes: Iterable) -> None:
    """One legend for the figure, above the panels, each label once in the order drawn."""
    handles: dict[str, object] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if handles:
        ncols = min(4, len(handles))
        labels = _row_major(list(handles), ncols)
        fig.legend([handles[k] for k in labels], labels, loc="outside upper center",
                   ncols=ncols, frameon=False, handlelength=1.8, columnspacing=1.0)


def _row_major(items: list[str], ncols: int) -> list[str]:
    """matplotlib fills legend columns top to bottom; reorder so the entries read left to right in method order."""
    rows = -(-len(items) // ncols)
    grid = [items[r * ncols: (r + 1) * ncols] for r in range(rows)]
    return [row[c] for c in range(ncols) for row in grid if c < len(row)]


def _panel_title(ax, groups: list[D.TaskRecords], group: D.TaskRecords, what: str = "") -> None:
    if len(groups) > 1:
        name = group.model if len(group.model) <= 40 else group.model[:39] + "…"  # a column is ~55 characters wide
        ax.set_title(_literal(name + (f": {what}" if what else "")), loc="left")


def _percent_axis(ax, label: str) -> None:
    ax.set_ylabel(label)
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)


def _band(ax, s: D.Series, color: str) -> None:
    if s.stderr is not None:
        ax.fill_between(s.x, [100 * (y - e) for y, e in zip(s.y, s.stderr)],
                        [100 * (y + e) for y, e in zip(s.y, s.stderr)], color=color, alpha=0.15, linewidth=0)


def draw_curves(groups: list[D.TaskRecords]) -> Drawn:
    """pass@1 (top) and maj@N (bottom) against step, every method on the same axes, from the base at step 0."""
    groups = [g for g in groups if g.methods] or groups  # a model with only a base result has no curve
    with matplotlib.rc_context(_STYLE):
        fig = _figure(2 * len(groups), 1.25)
        axes = fig.subplots(2 * len(groups), 1, sharex=True, squeeze=False)[:, 0]
        drawn = Drawn(fig)
        for i, group in enumerate(groups):
            for ax, key in zip(axes[2 * i: 2 * i + 2], ("pass@1", group.maj_key)):
                series = D.curve_series(group, key) if key else []
                base = D.metric_value(group.base, key) if (group.base and key) else None
                if base is not None:
                    ax.axhline(100 * base[0], color=colour("base"), linestyle=":", linewidth=0.8, label="base")
                for s in series:
                    style = _style(s.method)
                    if s.endpoints_only:  # a thin dotted join: no measurement lies between the two points
                        style.update(linestyle=":", linewidth=0.8)
                    ax.plot(s.x, [100 * y for y in s.y], marker="o" if len(s.x) <= 30 else None, markersize=2, **style)
                    _band(ax, s, style["color"])
                _percent_axis(ax, f"{key or 'maj@N'} (%)")
                _panel_title(ax, groups, group, key or "")
                drawn.series[f"{group.model} | {key}"] = series
        axes[-1].set_xlabel("training step (0 = base model)")
        axes[-1].set_xlim(left=0)
        _legend(fig, axes)
    return drawn


def _panel_per_group(groups: list[D.TaskRecords], height: float):
    """A figure with one panel (axes) per group, stacked, and the record of what gets drawn."""
    fig = _figure(len(groups), height)
    return fig, fig.subplots(len(groups), 1, squeeze=False)[:, 0], Drawn(fig)


def draw_pass_at_k(groups: list[D.TaskRecords]) -> Drawn:
    """pass@k against k (log axis) for base and every method: does adaptation narrow coverage?"""
    with matplotlib.rc_context(_STYLE):
        fig, axes, drawn = _panel_per_group(groups, 1.7)
        for ax, group in zip(axes, groups):
            series = D.pass_at_k_series(group)
            for s in series:
                style = _style(s.method)
                ax.plot(s.x, [100 * y for y in s.y], marker="o", markersize=2.5, **style)
                _band(ax, s, style["color"])
            ks = sorted({k for s in series for k in s.x})
            ax.set_xscale("log", base=2)
            if ks:
                ax.set_xticks(ks, [f"{k:g}" for k in ks])
                ax.minorticks_off()
            ax.set_xlabel("k (samples per question)")
            _percent_axis(ax, "pass@k (%)")
            _panel_title(ax, groups, group)
            drawn.series[group.model] = series
        _legend(fig, axes)
    return drawn


def draw_levels(groups: list[D.TaskRecords]) -> Drawn:
    """pass@1 by level, grouped bars (base, then methods) with ± s.e."""
    with matplotlib.rc_context(_STYLE):
        fig, axes, drawn = _panel_per_group(groups, 1.7)
        for ax, group in zip(axes, groups):
            names, series = D.levels(group), D.level_series(group)
            width = 0.8 / max(1, len(series))
            for j, s in enumerate(series):
                xs = [x - 0.4 + width * (j + 0.5) for x in s.x]
                ax.bar(xs, [100 * y for y in s.y], width, yerr=[100 * e for e in (s.stderr or [0] * len(s.y))],
                       capsize=1.5, error_kw={"elinewidth": 0.6}, color=colour(s.method), label=_label(s.method))
            ax.set_xticks(range(len(names)), [_literal(n) for n in names])
            _percent_axis(ax, "pass@1 (%)")
            ax.grid(axis="x", visible=False)
            _panel_title(ax, groups, group)
            drawn.series[group.model] = series
        axes[-1].set_xlabel("level")
        _legend(fig, axes)
    return drawn


def draw_labels(groups: list[D.TaskRecords]) -> Drawn:
    """Label accuracy (top) and majority ratio (bottom) per training step: raw faint, smoothed solid."""
    with matplotlib.rc_context(_STYLE):
        fig = _figure(2 * len(groups), 1.25)
        axes = fig.subplots(2 * len(groups), 1, sharex=True, squeeze=False)[:, 0]
        drawn = Drawn(fig)
        titles = {"label_accuracy": "label accuracy (%)", "majority_ratio": "majority ratio (%)"}
        for i, group in enumerate(groups):
            for ax, key in zip(axes[2 * i: 2 * i + 2], D.SIGNALS):
                pairs = D.signal_series(group, key)
                for raw, smoothed in pairs:
                    style = _style(raw.method)
                    ax.plot(raw.x, [100 * y for y in raw.y], color=style["color"], alpha=0.18, linewidth=0.5)
                    ax.plot(smoothed.x, [100 * y for y in smoothed.y], **style)
                _percent_axis(ax, titles[key])
                _panel_title(ax, groups, group, key.replace("_", " "))
                drawn.series[f"{group.model} | {key}"] = [s for _, s in pairs]
                drawn.series[f"{group.model} | {key} (raw)"] = [r for r, _ in pairs]
        axes[-1].set_xlabel("training step")
        _legend(fig, axes)
    return drawn


def task_figures(groups: list[D.TaskRecords]) -> dict[str, Drawn]:
    """The figures a task supports, by kind: curves when a method was adapted, levels when questions have
    levels, labels when per-step signals were recorded; pass@k always."""
    out: dict[str, Drawn] = {}
    if any(g.methods for g in groups):
        out["curves"] = draw_curves(groups)
    out["pass_at_k"] = draw_pass_at_k(groups)
    if any(D.levels(g) for g in groups):
        out["levels"] = draw_levels(groups)
    if any(D.has_signals(g) for g in groups):
        out["labels"] = draw_labels(groups)
    return out


def save(fig: Figure, stem: Path) -> list[Path]:
    """``stem``.png and ``stem``.pdf; no timestamps in either, so regenerated files diff only when they change."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")
    fig.savefig(png, dpi=PNG_DPI, metadata={"Software": None})
    fig.savefig(pdf, metadata={"CreationDate": None, "Creator": None, "Producer": None})
    return [png, pdf]


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI, metadata={"Software": None})
    return buf.getvalue()


def file_stem(task: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in task)


def write_task_figures(records: Iterable[Record], out_dir: str | Path) -> list[Path]:
    """Every task's figures as OUT/<task>__<kind>.{png,pdf}; returns the files written."""
    out_dir = Path(out_dir)
    written = []
    for task, groups in D.group_records(records).items():
        for kind, drawn in task_figures(groups).items():
            written += save(drawn.figure, out_dir / f"{file_stem(task)}__{kind}")
    return written
