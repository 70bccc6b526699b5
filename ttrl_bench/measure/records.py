"""Leaderboard records: one schema-versioned JSON object per (model, task, method) result.

Tables, plots and the CI gate read only these records, never run directories'
internals, so a record must carry everything a comparison needs: fingerprints to
know two results are about the same model and questions, and per-question scores
for paired statistics.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ttrl_bench.errors import UsageError
from ttrl_bench.measure.metrics import QuestionScore

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Record:
    model: str  # display name of the *base* model (rows of a leaderboard are base models)
    model_fingerprint: str
    task: str
    data_fingerprint: str
    method: str  # "base" for the unadapted model, else the adaptation method ("ttrl", "leakage", ...)
    metrics: dict[str, dict[str, float]]  # {"pass@1": {"mean": .., "stderr": ..}, "maj@16": .., "pass@4": ..}
    per_question: list[QuestionScore]
    sampling: dict[str, Any]
    method_config: dict[str, Any] = field(default_factory=dict)
    adapted_fingerprint: str | None = None  # fingerprint of the adapted weights, if any
    versions: dict[str, str] = field(default_factory=dict)
    date: str = ""
    run_dir: str = ""
    plots: list[str] = field(default_factory=list)  # PNG paths, relative to the record file
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. label accuracy, best step
    # Columns over training steps, each a list aligned with its "step" list (None = not logged at that step).
    # curve: the test-set measurements (step 0 = the base model; pass@1, maj@N and their "_stderr").
    # signals: the per-step training diagnostics, raw (label_accuracy, majority_ratio, reward_accuracy, ...).
    # Both are empty for the base model and for records written before they existed.
    curve: dict[str, list] = field(default_factory=dict)
    signals: dict[str, list] = field(default_factory=dict)
    report: str = ""  # the run's report.md, relative to the record file ("" = none)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @property
    def filename(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", self.model).strip("-") or "model"
        return f"{slug}__{self.task}__{self.method}.json"


def record_from_dict(data: Any, source: str) -> Record:
    """Validate a parsed record; ``source`` names the file in errors."""
    if not isinstance(data, dict):
        raise UsageError(f"{source}: expected a JSON object holding a ttrl-bench record")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UsageError(f"{source}: field 'schema_version' is {version!r}, expected {SCHEMA_VERSION}")
    known = {f.name for f in fields(Record)}
    required = {"model", "model_fingerprint", "task", "data_fingerprint", "method", "metrics", "per_question", "sampling"}
    missing = sorted(required - data.keys())
    if missing:
        raise UsageError(f"{source}: missing field '{missing[0]}' of a ttrl-bench record")
    try:
        per_q = [QuestionScore(**q) for q in data["per_question"]]
    except TypeError as exc:
        raise UsageError(f"{source}: field 'per_question' holds a malformed entry ({exc})") from None
    return Record(**{k: v for k, v in data.items() if k in known and k != "per_question"}, per_question=per_q)


def load_record(path: str | Path) -> Record:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such record file") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not readable as JSON ({exc})") from None
    return record_from_dict(data, str(path))


def load_records(directory: str | Path) -> list[Record]:
    """All records in a directory (``*.json``), sorted by file name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"{directory}: not a directory of records")
    return [load_record(p) for p in sorted(directory.glob("*.json"))]


def write_record(record: Record, directory: str | Path) -> Path:
    """Write atomically (temp file + rename), so an interrupted write never leaves half a record."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / record.filename
    tmp = target.with_suffix(".json.tmp")
    with open(tmp, "w") as fh:
        fh.write(record.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return target
