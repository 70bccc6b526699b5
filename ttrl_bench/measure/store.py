"""The resumable sample store: an append-only, fsync'd ``samples.jsonl`` in a run directory.

One JSON line per completion::

    {"question_id", "sample_index", "num_samples", "text", "num_tokens", "finish_reason", ...extra}

The first line of a question (``sample_index`` 0) also holds ``"prompt"``: the
exact text fed to the model (after the chat template, if any), so a reader can
see what the model saw. ``prompts()`` returns them.

A question's lines are written with one ``write`` and fsync'd before ``append``
returns, so a killed process can only leave an unfinished *tail*: a torn last line
or the first lines of its last question. Opening the store drops that tail (and
truncates it from the file), so the rerun samples those questions again and
never regenerates a finished one. ``num_samples`` on every line is what tells a
complete question from a cut one.

Every append and the load-and-truncate hold an flock on the file itself (``filelock``'s
descriptor lock), so a reader never mistakes a write in progress in another process for a
torn tail. Two *writers* on one file are kept apart one level up, by the run directory's lock.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from filelock import lock_descriptor, unlock_descriptor

from ttrl_bench.errors import UsageError
from ttrl_bench.types import Completion

SAMPLES_FILE = "samples.jsonl"
CORE_FIELDS = ("question_id", "sample_index", "num_samples", "text", "num_tokens", "finish_reason", "prompt")


class SampleStore:
    """``SampleStore(path)``: ``path`` is the JSONL file, or a run directory holding ``samples.jsonl``."""

    def __init__(self, path: str | Path):
        path = Path(path)
        self.path = path / SAMPLES_FILE if path.is_dir() else path
        self._done: dict[str, list[Completion]] = {}
        self._prompts: dict[str, str] = {}
        if self.path.exists():
            self._load()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def done(self) -> dict[str, list[Completion]]:
        """Question id -> its completions (in sample order), for every complete question."""
        return {qid: list(completions) for qid, completions in self._done.items()}

    def prompts(self) -> dict[str, str]:
        """Question id -> the exact prompt text the model was fed, for every stored question that has one."""
        return dict(self._prompts)

    def append(self, question_id: str, completions: list[Completion], extra: dict[str, Any] | None = None,
               prompt: str | None = None) -> None:
        """Write one question's completions durably (one write, then flush and fsync).

        ``prompt``: the exact text the model was fed, kept on the question's first line.
        """
        if question_id in self._done:
            raise ValueError(f"{self.path}: question {question_id!r} is already stored")
        if not completions:
            raise ValueError(f"{self.path}: question {question_id!r} has no completions to store")
        extra = extra or {}
        clash = sorted(set(extra) & set(CORE_FIELDS))
        if clash:
            raise ValueError(f"extra field {clash[0]!r} would overwrite a sample field")
        lines = [
            json.dumps(
                {
                    "question_id": question_id,
                    "sample_index": j,
                    "num_samples": len(completions),
                    "text": c.text,
                    "num_tokens": c.num_tokens,
                    "finish_reason": c.finish_reason,
                    **({"prompt": prompt} if prompt is not None and j == 0 else {}),
                    **extra,
                },
                ensure_ascii=False,
            )
            for j, c in enumerate(completions)
        ]
        data = ("\n".join(lines) + "\n").encode()
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            lock_descriptor(fd)  # released when the descriptor closes
            written = 0
            while written < len(data):  # os.write may write less than asked
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)  # so the new file's name survives a crash too
        self._done[question_id] = list(completions)
        if prompt is not None:
            self._prompts[question_id] = prompt

    def _load(self) -> None:
        with open(self.path, "r+b") as fh:
            # Held from reading to truncating: a torn tail is one no live writer is still appending to.
            lock_descriptor(fh.fileno())
            try:
                self._load_locked(fh)
            finally:
                unlock_descriptor(fh.fileno())

    def _load_locked(self, fh) -> None:
        raw = fh.read()
        good_end = 0  # byte offset just past the last complete question
        pending: list[dict] = []  # lines of a question not yet complete
        offset = 0
        # Every complete line ends with "\n"; whatever follows the last one is a
        # torn line from a writer killed mid-write (or nothing).
        for number, line in enumerate(raw.split(b"\n")[:-1], start=1):
            offset += len(line) + 1
            row = self._parse(line, number)
            if pending and row["question_id"] != pending[0]["question_id"]:
                raise UsageError(
                    f"{self.path}: line {number}: question {pending[0]['question_id']!r} is cut off before"
                    f" question {row['question_id']!r}; expected a question's lines together (file damaged)"
                )
            if row["sample_index"] != len(pending) or row["num_samples"] != (pending or [row])[0]["num_samples"]:
                raise UsageError(
                    f"{self.path}: line {number}: sample_index {row['sample_index']} of {row['num_samples']}"
                    f" for question {row['question_id']!r} is out of order; expected {len(pending)}"
                )
            pending.append(row)
            if len(pending) == row["num_samples"]:
                qid = row["question_id"]
                if qid in self._done:
                    raise UsageError(
                        f"{self.path}: line {number}: question {qid!r} appears twice; expected each question once"
                    )
                self._done[qid] = [
                    Completion(text=r["text"], num_tokens=r["num_tokens"], finish_reason=r["finish_reason"])
                    for r in pending
                ]
                if isinstance(pending[0].get("prompt"), str):
                    self._prompts[qid] = pending[0]["prompt"]
                pending = []
                good_end = offset
        if good_end < len(raw):
            # Drop the unfinished tail so the next append starts on a clean line.
            fh.truncate(good_end)
            fh.flush()
            os.fsync(fh.fileno())

    def _parse(self, line: bytes, number: int) -> dict:
        try:
            row = json.loads(line)
        except ValueError:
            raise UsageError(f"{self.path}: line {number} is not valid JSON; expected one sample per line") from None
        types = {
            "question_id": str, "sample_index": int, "num_samples": int,
            "text": str, "num_tokens": int, "finish_reason": str,
        }
        for name, kind in types.items():
            if not isinstance(row, dict) or not isinstance(row.get(name), kind):
                raise UsageError(f"{self.path}: line {number}: field {name!r} missing or not a {kind.__name__}")
        if row["finish_reason"] not in ("stop", "length"):
            raise UsageError(f"{self.path}: line {number}: field 'finish_reason' is {row['finish_reason']!r};"
                             " expected 'stop' or 'length'")
        return row


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
