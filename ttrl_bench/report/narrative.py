"""What happened, in words: one sentence per method, and figure captions, from records.

Used by the run report (``report.md``) and the leaderboard page, so both say the same.
A gain is "significant" when it exceeds two paired standard errors over questions;
a collapse warning is given where pass@k at the largest k (the coverage of the samples)
fell significantly and by at least one point against the base model.
"""
from __future__ import annotations

import math

from ttrl_bench.adapt.methods import display_name
from ttrl_bench.measure.metrics import mean_stderr, pass_at_k
from ttrl_bench.measure.records import Record
from ttrl_bench.report import figure_data as D


def _pts(x: float) -> str:
    return f"{100 * x:.1f}"


def paired_gain(base: Record, rec: Record, k: int = 1) -> tuple[float, float] | None:
    """Mean and s.e. of the per-question difference rec - base in pass@k, over the questions both have."""
    a = {q.id: q for q in base.per_question if q.n >= k}
    pairs = [(a[q.id], q) for q in rec.per_question if q.id in a and q.n >= k]
    if not pairs:
        return None
    return mean_stderr([pass_at_k(q.n, q.c, k) - pass_at_k(b.n, b.c, k) for b, q in pairs])


def _significant(mean: float, stderr: float) -> bool:
    return abs(mean) > 2 * stderr


def coverage_k(group: D.TaskRecords) -> int | None:
    """The largest k every record of the group can score (the smallest n of any question)."""
    ns = [q.n for r in group.by_method.values() for q in r.per_question if q.n > 0]
    return min(ns) if ns and min(ns) > 1 else None


def collapse(group: D.TaskRecords, method: str) -> str:
    """'' or a warning that pass@k at the largest k fell against base."""
    k, base = coverage_k(group), group.base
    if k is None or base is None:
        return ""
    gain = paired_gain(base, group.by_method[method], k)
    if gain is None or not (gain[0] < -0.01 and _significant(*gain)):
        return ""
    before = sum(pass_at_k(q.n, q.c, k) for q in base.per_question) / len(base.per_question)
    after = before + gain[0]
    return (f"pass@{k} fell from {_pts(before)} to {_pts(after)}: the samples collapsed onto fewer answers "
            "(coverage lost, not only accuracy)")


def _label_accuracy(rec: Record) -> str:
    first, last = rec.extra.get("label_accuracy_first"), rec.extra.get("label_accuracy_last")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (first, last)):
        return ""
    return f"label accuracy {100 * first:.0f}% → {100 * last:.0f}%"


def method_sentence(group: D.TaskRecords, method: str) -> str:
    """E.g. "TTRL: pass@1 67.2 → 95.1 (+27.9 ± 1.7 points), 97% of the leakage gain; label accuracy 100% → 99%."."""
    rec, base = group.by_method[method], group.base
    name = display_name(method)
    final = D.metric_value(rec, "pass@1")
    if final is None:
        return f"{name}: no pass@1 recorded."
    if base is None or D.metric_value(base, "pass@1") is None:
        return f"{name}: pass@1 {_pts(final[0])} (no base record to compare with)."
    start = D.metric_value(base, "pass@1")[0]
    text = f"{name}: pass@1 {_pts(start)} → {_pts(final[0])}"
    gain = paired_gain(base, rec)
    if gain is not None:
        text += f" ({100 * gain[0]:+.1f} ± {100 * gain[1]:.1f} points{'' if _significant(*gain) else ', not significant'})"
    parts = [text]
    leakage = group.by_method.get("leakage")
    if method == "leakage":
        parts[0] += ", true labels: the upper reference"
    elif leakage is not None and D.metric_value(leakage, "pass@1") is not None:
        leak_gain = D.metric_value(leakage, "pass@1")[0] - start
        own = final[0] - start
        if leak_gain > 0 and own > 0:
            parts[0] += f", {100 * own / leak_gain:.0f}% of the leakage gain"
        elif leak_gain > 0:
            parts[0] += f", while leakage gains {100 * leak_gain:+.1f}"
    labels = _label_accuracy(rec)
    if labels:
        parts.append(labels)
    warning = collapse(group, method)
    if warning:
        parts.append("warning: " + warning)
    return "; ".join(parts) + "."


def method_sentences(group: D.TaskRecords) -> list[str]:
    return [method_sentence(group, m) for m in group.methods]


def _prefix(groups: list[D.TaskRecords], group: D.TaskRecords) -> str:
    return f"{group.model}: " if len(groups) > 1 else ""


def caption(kind: str, task: str, groups: list[D.TaskRecords]) -> tuple[str, list[str]]:
    """The caption of one task figure in words: what it shows, and one line per fact it shows."""
    models = ", ".join(g.model for g in groups)
    if kind == "curves":
        maj = groups[0].maj_key or "maj@N"
        endpoints = any(s.endpoints_only for g in groups for s in D.curve_series(g, "pass@1"))
        text = (f"{models} on {task}: pass@1 (top) and {maj} (bottom) against training step, from the base model "
                "at step 0; shading ± one standard error over questions; leakage (dashed) is RL with the true labels, "
                "the upper reference.")
        if endpoints:
            text += " Dotted joins: only the base and the final model were measured."
        return text, [_prefix(groups, g) + s for g in groups for s in method_sentences(g)]
    if kind == "pass_at_k":
        parts = []
        for g in groups:
            k = coverage_k(g)
            series = {s.method: s for s in D.pass_at_k_series(g)}
            if k is None or not series:
                continue
            values = ", ".join(f"{'base' if m == 'base' else display_name(m)} {_pts(s.y[-1])}" for m, s in series.items())
            parts.append(f"{_prefix(groups, g)}pass@{k}: {values}.")
        return (f"{models} on {task}: pass@k against k on a log axis, unbiased estimate from each question's samples, "
                "± one standard error; a method whose curve ends below base at large k lost coverage.", parts)
    if kind == "levels":
        return f"{models} on {task}: pass@1 by level, ± one standard error over the level's questions.", []
    if kind == "labels":
        parts = []
        for g in groups:
            for m in g.methods:
                labels = _label_accuracy(g.by_method[m])
                if labels:
                    parts.append(f"{_prefix(groups, g)}{display_name(m)} {labels}.")
        steps = [len(raw.x) for g in groups for raw, _ in D.signal_series(g, "label_accuracy")]
        window = D.smoothing_window(max(steps)) if steps else 1
        return (f"{models} on {task}: label accuracy (is the majority answer right?) and majority ratio (share of the "
                f"samples that agree with it) at each training step; faint: the raw per-step values, solid: moving "
                f"average over {window} steps.", parts)
    raise ValueError(f"unknown figure kind {kind!r}")
