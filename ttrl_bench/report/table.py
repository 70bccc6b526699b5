"""The table model every leaderboard format renders: typed cells, so formats never parse text."""
from __future__ import annotations

from dataclasses import dataclass

MISSING = "—"


@dataclass(frozen=True)
class Score:
    mean: float  # points
    stderr: float


@dataclass(frozen=True)
class Gain:
    points: float
    percent: float | None  # relative to base; None when base is 0


@dataclass(frozen=True)
class Share:
    fraction: float  # (method - base) / (leakage - base)


@dataclass(frozen=True)
class PairedGain:
    """Gain over the base model on the same questions, with the paired standard error (points)."""

    points: float
    stderr: float
    questions: int


Cell = str | Score | Gain | Share | PairedGain | None


@dataclass(frozen=True)
class Table:
    layout: str
    metrics: tuple[str, ...]
    headers: tuple[str, ...]
    kinds: tuple[type, ...]  # per column: str, Score, Gain, Share or PairedGain
    rows: tuple[tuple[Cell, ...], ...]


def cell_text(cell: Cell) -> str:
    if cell is None:
        return MISSING
    if isinstance(cell, Score):
        return f"{cell.mean:.1f} ± {cell.stderr:.1f}"
    if isinstance(cell, Gain):
        return f"{cell.points:+.1f}" + (f" ({cell.percent:+.0f}%)" if cell.percent is not None else "")
    if isinstance(cell, Share):
        return f"{100 * cell.fraction:.0f}%"
    if isinstance(cell, PairedGain):
        return f"{cell.points:+.1f} ± {cell.stderr:.1f}"
    return cell
