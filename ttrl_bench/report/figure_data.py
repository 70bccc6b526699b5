"""What the paper figures show, computed from records alone (no matplotlib): the series each figure draws.

Figures are per (task, model): one ``TaskRecords`` holds the base record and every
method's record of one model on one task. Each function returns the series a figure
draws, so tests check the numbers plotted rather than pixels.

- curves: pass@1 / maj@N against training step per method, from the record's ``curve``
  (the probes taken during adaptation); step 0 is the base model. Records written
  before curves were kept give two points: the base at 0 and the final measurement.
- pass@k: the unbiased pass@k (``metrics.pass_at_k``) of each question's n and c, averaged
  over questions, for k = 1, 2, 4, ... up to the smallest n (and that n itself).
- levels: pass@1 by question level (only where records carry levels).
- labels: label accuracy and majority ratio per training step (raw) and a centred moving
  average of them (the raw series of a 4-question step jumps between 0 and 1).
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ttrl_bench.adapt.methods import sort_methods
from ttrl_bench.measure.metrics import mean_stderr, pass_at_k
from ttrl_bench.measure.records import Record

SIGNALS = ("label_accuracy", "majority_ratio")


@dataclass(frozen=True)
class Series:
    """One line of a figure: x, y and (optionally) a standard error per point for a shaded band."""

    method: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    stderr: tuple[float, ...] | None = None
    endpoints_only: bool = False  # only the base and the final measurement are known: not a trajectory


@dataclass
class TaskRecords:
    """The records of one model on one task, by method ("base" included when present)."""

    model: str
    task: str
    by_method: dict[str, Record] = field(default_factory=dict)

    @property
    def base(self) -> Record | None:
        return self.by_method.get("base")

    @property
    def methods(self) -> list[str]:
        """Adapted methods (not base), in the registry's order."""
        return [m for m in sort_methods(self.by_method) if m != "base"]

    @property
    def maj_key(self) -> str | None:
        """maj@N with the largest N any record of the group has."""
        keys = {k for r in self.by_method.values() for k in r.metrics if re.fullmatch(r"maj@[0-9]+", k)}
        return max(keys, key=lambda k: int(k[4:]), default=None)


def group_records(records: Iterable[Record]) -> dict[str, list[TaskRecords]]:
    """Records grouped by task (sorted), then by model (sorted case-insensitively)."""
    groups: dict[tuple[str, str], TaskRecords] = {}
    for r in records:
        groups.setdefault((r.task, r.model), TaskRecords(r.model, r.task)).by_method[r.method] = r
    out: dict[str, list[TaskRecords]] = {}
    for task, model in sorted(groups, key=lambda k: (k[0], k[1].casefold(), k[1])):
        out.setdefault(task, []).append(groups[(task, model)])
    return out


def _number(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _column_points(columns: dict[str, list], key: str) -> list[tuple[float, float, float | None]]:
    """(step, value, stderr) for the steps where ``key`` has a finite number."""
    steps, values = columns.get("step") or [], columns.get(key) or []
    errors = columns.get(f"{key}_stderr") or []
    points = []
    for i, (s, v) in enumerate(zip(steps, values)):
        s, v = _number(s), _number(v)
        if s is None or v is None:
            continue
        points.append((s, v, _number(errors[i]) if i < len(errors) else None))
    return sorted(points, key=lambda p: p[0])


def metric_value(record: Record, key: str) -> tuple[float, float | None] | None:
    entry = record.metrics.get(key)
    if not isinstance(entry, dict) or _number(entry.get("mean")) is None:
        return None
    return float(entry["mean"]), _number(entry.get("stderr"))


def curve_series(group: TaskRecords, key: str) -> list[Series]:
    """``key`` (pass@1 or maj@N) against step for every method, each starting at the base model at step 0."""
    base = metric_value(group.base, key) if group.base else None
    out = []
    for method in group.methods:
        rec = group.by_method[method]
        points = _column_points(rec.curve, key)
        if not points:  # a record from before curves were kept: its final measurement only
            final, step = metric_value(rec, key), _number(rec.extra.get("final_step"))
            if final is None or step is None:
                continue
            points = [(step, final[0], final[1])]
            endpoints_only = True
        else:
            endpoints_only = False
        if base is not None and points[0][0] > 0:
            points.insert(0, (0.0, base[0], base[1]))
        s = _series(method, points)
        out.append(Series(s.method, s.x, s.y, s.stderr, endpoints_only))
    return out


def _series(method: str, points: Sequence[tuple[float, float, float | None]]) -> Series:
    errors = tuple(p[2] for p in points)
    return Series(method, tuple(p[0] for p in points), tuple(p[1] for p in points),
                  None if any(e is None for e in errors) else errors)


def pass_at_k_ks(n: int) -> list[int]:
    ks = [1 << i for i in range(n.bit_length()) if (1 << i) <= n]
    return ks + ([n] if n not in ks else [])


def pass_at_k_series(group: TaskRecords) -> list[Series]:
    """Mean pass@k over questions (± s.e.) against k, for base and every method, k up to the smallest n."""
    out = []
    for method in sort_methods(group.by_method):
        questions = [q for q in group.by_method[method].per_question if q.n > 0]
        if not questions:
            continue
        ks = pass_at_k_ks(min(q.n for q in questions))
        stats = [mean_stderr([pass_at_k(q.n, q.c, k) for q in questions]) for k in ks]
        out.append(Series(method, tuple(float(k) for k in ks), tuple(m for m, _ in stats), tuple(s for _, s in stats)))
    return out


def _level_key(level: str) -> tuple:
    """"Level 2" < "Level 10"; numbers by value, the rest alphabetically."""
    digits = re.findall(r"[0-9]+", level)
    return (0, int(digits[0]), level) if digits else (1, 0, level)


def levels(group: TaskRecords) -> list[str]:
    found = {str(q.level) for r in group.by_method.values() for q in r.per_question if q.level not in (None, "")}
    return sorted(found, key=_level_key)


def level_series(group: TaskRecords) -> list[Series]:
    """pass@1 (mean of c/n) per level for base and every method; x is the level's index in ``levels``."""
    names = levels(group)
    out = []
    for method in sort_methods(group.by_method):
        by_level: dict[str, list[float]] = {}
        for q in group.by_method[method].per_question:
            if q.level not in (None, "") and q.n > 0:
                by_level.setdefault(str(q.level), []).append(q.c / q.n)
        points = [(float(i), *mean_stderr(by_level[lvl])) for i, lvl in enumerate(names) if lvl in by_level]
        if points:
            out.append(_series(method, points))
    return out


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Centred moving average; near the ends the window shrinks to the points that exist."""
    half = max(0, window // 2)
    prefix = [0.0]
    for v in values:
        prefix.append(prefix[-1] + v)
    out = []
    for i in range(len(values)):
        lo, hi = max(0, i - half), min(len(values), i + half + 1)
        out.append((prefix[hi] - prefix[lo]) / (hi - lo))
    return out


def smoothing_window(length: int) -> int:
    """About 1/20 of the run (odd, at least 1): 25 steps of a 500-step run."""
    window = max(1, round(length / 20))
    return window if window % 2 else window + 1


def signal_series(group: TaskRecords, key: str) -> list[tuple[Series, Series]]:
    """(raw, smoothed) per-step ``key`` for every method that logged it."""
    out = []
    for method in group.methods:
        points = _column_points(group.by_method[method].signals, key)
        if not points:
            continue
        raw = Series(method, tuple(p[0] for p in points), tuple(p[1] for p in points))
        out.append((raw, Series(method, raw.x, tuple(smooth(raw.y, smoothing_window(len(raw.y)))))))
    return out


def has_signals(group: TaskRecords) -> bool:
    return any(signal_series(group, key) for key in SIGNALS)
