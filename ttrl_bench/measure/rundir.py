"""Run directories: where a run lives, how it is opened (never over another run, never by two
processes at once), atomic JSON writes."""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from ttrl_bench.errors import UsageError
from ttrl_bench.measure.provenance import config_hash
from ttrl_bench.measure.records import check_writable_dir

if TYPE_CHECKING:
    from ttrl_bench.measure.loop import Measurement

LOCK_FILE = ".ttrl-bench.lock"  # holds the holder's pid; flock'd while a process owns the run
# Entries a run directory may hold before any result: what a discarded, unfinished open leaves.
_SCAFFOLD = {"config.json", LOCK_FILE}

# Locks this process holds, by resolved directory: kept alive here (a lock dies with its object) and
# re-entered when the same process opens the same directory again (an flock on a second descriptor
# would fail against our own first one).
_HELD: dict[Path, FileLock] = {}
_CREATED: set[Path] = set()  # directories this process created, for discard_unfinished()


def default_out_dir(task: str, model_name: str, identity: dict, kind: str = "eval") -> Path:
    """runs/<kind>-<task>-<model>-<hash of what makes the run>: the same command finds its run again."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model_name).strip("-")
    task_slug = re.sub(r"[^A-Za-z0-9._-]+", "-", task).strip("-")  # "lm_eval:gsm8k" -> "lm_eval-gsm8k"
    return Path("runs") / f"{kind}-{task_slug}-{slug}-{config_hash(identity)}"


def check_out_dir(out: Path, identity: dict) -> None:
    """Everything that would make ``open_run_dir`` refuse ``out``, checked without writing anything."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file; expected a run directory (or a path to create one)")
    cfg_path = out / "config.json"
    if cfg_path.exists():
        _check_identity(out, identity)
    elif out.is_dir() and set(p.name for p in out.iterdir()) - {LOCK_FILE}:
        raise UsageError(f"--out {out}: exists and is not a ttrl-bench run directory; use another --out")
    check_writable_dir(out, "--out")  # the directory, or the nearest ancestor that exists, takes files


def _check_identity(out: Path, identity: dict) -> None:
    cfg_path = out / "config.json"
    try:
        old = json.loads(cfg_path.read_text())["identity"]
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{cfg_path}: not a ttrl-bench run config; use another --out") from None
    # "chunk" is derived from sampling.n: name the setting the user changed, not its consequence
    for key in sorted(set(old) | set(identity), key=lambda k: (k == "chunk", k)):
        if old.get(key) != identity.get(key):
            raise UsageError(
                f"--out {out}: holds a run with a different {key} ({old.get(key)!r} vs {identity.get(key)!r}); "
                "use another --out"
            )


def open_run_dir(out: Path, identity: dict, full_config: dict) -> None:
    """Create ``out`` or check that it holds this very run; never overwrite another run.

    Takes an exclusive lock on the directory, held until this process ends (or ``release_run_dir``):
    a second process on the same directory gets a UsageError naming the holder's pid. Child processes
    this one launches (accelerate workers) never open the run directory, so they are not locked out.
    """
    check_out_dir(out, identity)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create the directory ({exc.strerror})") from None
    if created:
        _CREATED.add(out.resolve())
    _lock(out)
    # Under the lock, check again: another process may have written its config meanwhile.
    cfg_path = out / "config.json"
    if cfg_path.exists():
        _check_identity(out, identity)
        return
    write_json(cfg_path, full_config)


def _lock(out: Path) -> None:
    key = out.resolve()
    held = _HELD.get(key)
    if held is not None and held.is_locked:
        held.acquire()  # re-entrant: this process already owns the directory
        return

    def write_pid(fd: int) -> None:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)

    lock = FileLock(out / LOCK_FILE, timeout=0, on_acquired=write_pid)
    try:
        lock.acquire()
    except Timeout:
        try:
            pid = (out / LOCK_FILE).read_text().strip() or "unknown"
        except OSError:
            pid = "unknown"
        raise UsageError(
            f"--out {out}: in use by another ttrl-bench process (pid {pid}); wait for it to finish or use another --out"
        ) from None
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot lock the run directory ({exc.strerror})") from None
    _HELD[key] = lock


def release_run_dir(out: Path) -> None:
    """Give up this process's lock on ``out`` (all re-entries); a no-op if it holds none."""
    lock = _HELD.pop(out.resolve(), None)
    if lock is not None:
        lock.release(force=True)


def release_all_run_dirs() -> None:
    """End of a command: give up every run-directory lock this process holds."""
    for key in list(_HELD):
        release_run_dir(key)


def discard_unfinished() -> None:
    """Remove run directories this process created that hold no result yet (only config.json and the
    lock): called when a run fails on bad input, so the corrected command is not refused by them."""
    for path in sorted(_CREATED):
        try:
            files = {str(p.relative_to(path)) for p in path.rglob("*") if not p.is_dir()}
        except OSError:
            continue
        if files <= _SCAFFOLD:  # empty subdirectories (base/, a method's) hold nothing either
            release_run_dir(path)
            shutil.rmtree(path, ignore_errors=True)
        _CREATED.discard(path)


def write_json(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def write_measurement(out: Path, m: Measurement) -> None:
    with open(out / "grades.jsonl.tmp", "w") as fh:
        for g in m.grades:
            fh.write(json.dumps(asdict(g)) + "\n")
    os.replace(out / "grades.jsonl.tmp", out / "grades.jsonl")
    write_json(out / "metrics.json", m.summary.to_dict())


