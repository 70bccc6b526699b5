"""Leaderboard records: one schema-versioned JSON object per (model, task, method) result.

Tables, plots and the CI gate read only these records, never run directories'
internals, so a record must carry everything a comparison needs: fingerprints to
know two results are about the same model and questions, and per-question scores
for paired statistics.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ttrl_bench.errors import UsageError
from ttrl_bench.measure.metrics import QuestionScore
from ttrl_bench.measure.record_extra import RecordExtra, check_extra

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
    extra: RecordExtra = field(default_factory=RecordExtra)  # e.g. label accuracy, best step
    # Columns over training steps, each a list aligned with its "step" list (None = not logged at that step).
    # curve: the test-set measurements (step 0 = the base model; pass@1, maj@N and their "_stderr").
    # signals: the per-step training diagnostics, raw (label_accuracy, majority_ratio, reward_accuracy, ...).
    # Both are empty for the base model and for records written before they existed.
    curve: dict[str, list] = field(default_factory=dict)
    signals: dict[str, list] = field(default_factory=dict)
    report: str = ""  # the run's report.md, relative to the record file ("" = none)
    schema_version: int = SCHEMA_VERSION
    # Generalization (run --eval-tasks / --holdout); records without these fields load as before.
    # ``task`` is always the task MEASURED on; ``adapted_on`` the task the model was adapted on when that
    # differs (a transfer row); None for base and for in-sample rows.
    adapted_on: str | None = None
    # {"fraction", "seed", "held_out_ids"}: adaptation never saw the held-out ids (run --holdout)
    holdout: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @property
    def origin(self) -> str:
        """What besides (task, method) tells this result apart: "" for the plain in-sample run."""
        parts = []
        if self.adapted_on is not None and self.adapted_on != self.task:
            parts.append(f"adapted on {self.adapted_on}")
        if self.holdout is not None:
            parts.append(f"holdout {self.holdout['fraction']:g} seed {self.holdout['seed']}")
        return ", ".join(parts)

    @property
    def filename(self) -> str:
        """``<slug>-<identity hash>__<task>__<method>[__from-T][__holdout-F-seedS].json``: the hash of the exact
        display name and the model fingerprint keeps names that slug alike ("org/model", "org-model") and two
        models shown under one name in separate files; transfer and held-out records never overwrite the
        in-sample ones."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", self.model).strip("-.")[:80] or "model"
        identity = hashlib.sha256(f"{self.model}\0{self.model_fingerprint}".encode()).hexdigest()[:8]
        suffix = ""
        if self.adapted_on is not None and self.adapted_on != self.task:
            suffix += f"__from-{_slug(self.adapted_on)}"
        if self.holdout is not None:
            suffix += f"__holdout-{self.holdout['fraction']:g}-seed{self.holdout['seed']}"
        return f"{slug}-{identity}__{_slug(self.task)}__{_slug(self.method)}{suffix}.json"

    @property
    def slot(self) -> tuple[str, str, str]:
        """What a leaderboard shows one cell for."""
        return (self.model, self.task, self.method) if not self.origin else (self.model, self.task, f"{self.method} ({self.origin})")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"


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
    _check_types(data, source)
    try:
        per_q = [QuestionScore(**q) for q in data["per_question"]]
    except TypeError as exc:
        raise UsageError(f"{source}: field 'per_question' holds a malformed entry ({exc})") from None
    holdout = data.get("holdout")
    if holdout is not None and not (
        isinstance(holdout, dict) and isinstance(holdout.get("held_out_ids"), list)
        and isinstance(holdout.get("fraction"), (int, float)) and isinstance(holdout.get("seed"), int)
    ):
        raise UsageError(f"{source}: field 'holdout' must be null or an object with 'fraction', 'seed', 'held_out_ids'")
    return Record(**{k: v for k, v in data.items() if k in known and k != "per_question"}, per_question=per_q)


def _check_types(data: dict, source: str) -> None:
    """Every field a table, plot or gate reads, with the type it must have (a string where a dict
    belongs would otherwise surface as a riddle such as "records have e, n, o, p")."""
    for name in ("model", "model_fingerprint", "task", "data_fingerprint", "method"):
        if not isinstance(data[name], str) or not data[name]:
            raise UsageError(f"{source}: field {name!r} must be a non-empty string")
    metrics = data["metrics"]
    if not isinstance(metrics, dict) or not metrics:
        raise UsageError(f"{source}: field 'metrics' must be an object of metric -> {{mean, stderr}}")
    for metric, entry in metrics.items():
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), (int, float)) and not isinstance(entry.get(k), bool)
            and math.isfinite(entry[k]) for k in ("mean", "stderr")
        ):
            raise UsageError(f"{source}: field metrics[{metric!r}] must hold finite numbers 'mean' and 'stderr'")
    if not isinstance(data["per_question"], list) or not all(isinstance(q, dict) for q in data["per_question"]):
        raise UsageError(f"{source}: field 'per_question' must be a list of objects")
    if not isinstance(data["sampling"], dict):
        raise UsageError(f"{source}: field 'sampling' must be an object")
    for name, kind in (("plots", list), ("extra", dict), ("method_config", dict), ("versions", dict)):
        if name in data and not isinstance(data[name], kind):
            raise UsageError(f"{source}: field {name!r} must be a{'n object' if kind is dict else ' list'}")
    if not all(isinstance(p, str) for p in data.get("plots", [])):
        raise UsageError(f"{source}: field 'plots' must be a list of paths")
    check_extra(data.get("extra", {}), source)



def load_record(path: str | Path) -> Record:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such record file") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not readable as JSON ({exc})") from None
    return record_from_dict(data, str(path))


def _records_in(directory: Path) -> list[Record]:
    """All records in a directory (``*.json``), sorted by file name."""
    return [load_record(p) for p in sorted(directory.glob("*.json"))]


def records_directory(path: str | Path) -> Path:
    """The directory a leaderboard's plot paths are relative to: a record file's folder,
    RUN_DIR/records, or the directory itself."""
    path = Path(path)
    if path.is_file():
        return path.parent
    if not path.is_dir():
        raise UsageError(f"{path}: no such record file or directory")
    return path / "records" if (path / "records").is_dir() else path


def load_records(path: str | Path) -> list[Record]:
    """Records from a record file, a directory of records, or a run directory.

    A run directory keeps its records in RUN_DIR/records (``eval``) or in
    RUN_DIR/<method>/records (``run``: base, ttrl, leakage, ...); both are read.
    """
    path = Path(path)
    if path.is_file():
        return [load_record(path)]
    if not path.is_dir():
        raise UsageError(f"{path}: no such record file or directory")
    # RUN_DIR/transfer/<task>/<method>/records: the measurements of run --eval-tasks
    run_dirs = [d for d in [path / "records", *sorted(path.glob("*/records")), *sorted(path.glob("transfer/*/*/records"))]
                if d.is_dir()]
    records = [r for d in (run_dirs or [path]) for r in _records_in(d)]
    if not records:
        raise UsageError(f"{path}: no records found (looked for *.json in it, in records/ and in */records/)")
    return records



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


def _existing_records(directory: Path) -> dict[Path, Record]:
    """The readable records in ``directory`` (others are left for ``leaderboard`` to complain about)."""
    found = {}
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            found[path] = load_record(path)
        except UsageError:
            continue
    return found


def check_leaderboard_slots(directory: str | Path, model: str, model_fingerprint: str, task: str,
                            methods: list[str]) -> None:
    """Refuse, before any work, to publish a model under a name another model already has there."""
    directory = Path(directory)
    for path, old in _existing_records(directory).items():
        if old.model == model and old.task == task and old.method in methods and old.model_fingerprint != model_fingerprint:
            raise UsageError(
                f"--leaderboard {directory}: {path.name} already holds {model!r} on {task}/{old.method} with another "
                f"model fingerprint ({old.model_fingerprint} vs {model_fingerprint}); pass --model-name to tell "
                "them apart, or remove that record"
            )


def publish_record(record: Record, directory: str | Path) -> Path:
    """Write ``record`` into a shared leaderboard directory.

    The same model (name and fingerprint) re-measured replaces its own earlier record, also one
    written under an older file name; another model under the same name is refused (UsageError),
    never overwritten.
    """
    directory = Path(directory)
    check_leaderboard_slots(directory, record.model, record.model_fingerprint, record.task, [record.method])
    stale = [p for p, old in _existing_records(directory).items()
             if old.slot == record.slot and p.name != record.filename]
    target = directory / record.filename
    if target.exists() and target not in stale:
        try:
            old = load_record(target)
        except UsageError:
            raise UsageError(f"--leaderboard {directory}: {target.name} exists and is not a record; not overwriting it") from None
        if (old.model, old.model_fingerprint) != (record.model, record.model_fingerprint):
            raise UsageError(f"--leaderboard {directory}: {target.name} holds another model ({old.model!r}); not overwriting it")
    path = write_record(record, directory)
    for p in stale:
        p.unlink(missing_ok=True)
    return path


def check_writable_dir(directory: str | Path, flag: str) -> None:
    """A directory we will write into later: refuse now if it is a file or cannot be created/written."""
    directory = Path(directory)
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UsageError(f"{flag} {directory}: {probe} is a file; expected a directory")
    # Try it rather than ask os.access: root passes every permission check, yet a read-only
    # mount or /proc still refuses. The probe is removed at once; nothing is left behind.
    try:
        fd, name = tempfile.mkstemp(prefix=".ttrl-bench-probe-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise UsageError(f"{flag} {directory}: {probe} is not writable ({exc.strerror})") from None
