"""The train log, RUN/<method>/train_log.jsonl: one JSON object a line, written by ``TrainLog``, read as typed rows.

Two kinds of row share the file, told apart by their "kind" field: "train", what TRL logged at one optimisation
step (reward, loss, entropy, lengths, our diagnostics; ``callbacks.LogCallback``), and "eval", a measurement of
the test set during training (``summary.eval_row``, by ``callbacks.ProbeCallback``). Readers get ``TrainStep``
and ``ProbeRow`` from ``read_rows``/``parse_rows``; the file keeps the objects as written, so ``as_dict`` gives
a row back as it stands in the file.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


class TrainLog:
    """Append-only JSONL of dict rows; on resume, rows past the checkpoint step are dropped."""

    def __init__(self, path: Path, resume_step: int = 0):
        self.path = path
        rows = self.read(path)
        kept = [r for r in rows if r.get("step", 0) <= resume_step]
        if len(kept) != len(rows) or not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    @staticmethod
    def read(path: Path) -> list[dict]:
        """The rows as written (the writer's view; readers want ``read_rows``)."""
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                break  # a torn last line from an interrupted run
        return rows

    def append(self, row: dict) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()


@dataclass(frozen=True)
class TrainStep:
    """A "train" row: the numbers logged at optimisation step ``step``, by name."""

    step: int
    values: Mapping[str, float] = field(default_factory=dict)  # reward, label_accuracy, step_time, peak_memory_gib, ...

    def as_dict(self) -> dict:
        return {"step": self.step, "kind": "train", **self.values}


@dataclass(frozen=True)
class ProbeRow:
    """An "eval" row: the test set measured at step ``step``."""

    step: int
    scores: Mapping[str, float] = field(default_factory=dict)  # pass@1, maj@N, pass@n, their "_stderr", eval_majority_ratio
    backend: str | None = None  # the sampler that measured (None in logs written before it was recorded)
    questions: int | None = None
    seconds: float | None = None  # how long the measurement took

    def as_dict(self) -> dict:
        known = {"backend": self.backend, "questions": self.questions}
        return {"step": self.step, "kind": "eval", **{k: v for k, v in known.items() if v is not None}, **self.scores,
                **({} if self.seconds is None else {"seconds": self.seconds})}


LogRow = TrainStep | ProbeRow


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_rows(rows: Iterable[Mapping], source: str = "train log") -> list[LogRow]:
    """Typed rows of the two kinds; rows of any other kind are not the readers' concern and are left out.
    A row without a numeric step is an error naming it (``source`` names the file)."""
    out: list[LogRow] = []
    for i, row in enumerate(rows):
        kind = row.get("kind")
        if kind not in ("train", "eval"):
            continue
        step = row.get("step")
        if not _is_number(step) or not math.isfinite(step):
            raise ValueError(f"{source} row {i}: expected a numeric 'step', got {step!r}")
        numbers = {k: v for k, v in row.items() if k not in ("step", "kind") and _is_number(v)}
        if kind == "train":
            out.append(TrainStep(int(step), numbers))
        else:
            questions, seconds = numbers.pop("questions", None), numbers.pop("seconds", None)
            backend = row.get("backend")
            out.append(ProbeRow(int(step), numbers, backend if isinstance(backend, str) else None,
                                None if questions is None else int(questions), seconds))
    return out


def read_rows(path: Path) -> list[LogRow]:
    """The train log at ``path`` as typed rows ([] when there is none yet)."""
    return parse_rows(TrainLog.read(path), str(path))
