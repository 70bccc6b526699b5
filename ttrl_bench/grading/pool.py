"""A pool of math-verify worker processes, one question per request, with hard deadlines.

Each worker (``worker.py``) grades one question at a time and announces every
math-verify operation before running it. Its own timer bounds each operation;
if that fails (a computation stuck in C code, which no signal interrupts) the
parent kills the worker at the operation's limit plus a grace period, starts a
replacement and re-sends the question with the culprit marked (a text as
unparseable, a comparison as failed) and the rest of its budget, so a stuck
operation costs one timeout, never the question. Workers start lazily and talk
JSON lines over pipes. Not thread-safe: the Grader serialises access.
"""
from __future__ import annotations

import collections
import json
import os
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Hashable

_WORKER_SCRIPT = str(Path(__file__).with_name("worker.py"))
# Run the worker file directly rather than ``-m``: importing the ttrl_bench
# package in every worker would pull in whatever the package imports.
_LAUNCH = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"
START_TIMEOUT_SECONDS = 120.0  # importing sympy on a loaded machine can take a while


@dataclass
class PoolCounts:
    questions: int = 0  # requests answered
    kills: int = 0  # workers killed at a hard deadline (or found dead)
    starts: int = 0


@dataclass
class _Job:
    token: Hashable
    request: dict
    busy_seconds: float = 0.0  # time spent in workers so far (over re-sends)
    timed_out: list = field(default_factory=list)  # operations that timed out (over re-sends)
    kills: int = 0

    def blame(self, op: list) -> None:
        """An operation timed out: a re-send must not run it again."""
        self.timed_out.append(op)
        if op[0] == "parse":
            self.request["unparseable"] = sorted({*self.request.get("unparseable", []), op[1]})
        else:
            self.request["failed"] = [*self.request.get("failed", []), op[1:]]


@dataclass
class _Worker:
    process: subprocess.Popen
    started: float
    ready: bool = False
    buffer: bytes = b""
    job: _Job | None = None
    dispatched: float = 0.0
    op: list | None = None  # the operation announced last
    deadline: float = 0.0


class VerifyPool:
    """``submit(token, request)`` then ``results()`` yields ``(token, reply)`` (see worker.py).

    A reply gains ``timed_out`` (every operation that timed out, in the worker or
    at a hard deadline, over all attempts), ``kills`` and ``busy_seconds`` (time
    in workers over all attempts, worker start-ups excluded).
    """

    def __init__(self, workers: int, grace_seconds: float = 1.0, counts: PoolCounts | None = None):
        self.size = max(1, workers)
        self.grace = grace_seconds
        self.counts = counts if counts is not None else PoolCounts()
        self.closed = False
        self.owner_pid = os.getpid()
        self._workers: list[_Worker] = []
        self._queue: collections.deque[_Job] = collections.deque()
        self._selector = selectors.DefaultSelector()

    @property
    def busy(self) -> bool:
        return bool(self._queue) or any(w.job is not None for w in self._workers)

    def submit(self, token: Hashable, request: dict) -> None:
        self._queue.append(_Job(token, dict(request)))

    def start(self) -> None:
        """Start every worker now and wait until all are ready."""
        self._staff(everyone=True)
        while not all(w.ready for w in self._workers):
            for _ in self._collect():
                pass
            self._staff(everyone=True)

    def results(self):
        """Yield replies as they arrive until every submitted question is answered."""
        while self.busy:
            self._staff()
            self._dispatch()
            yield from self._collect()

    def close(self) -> None:
        if self.closed or os.getpid() != self.owner_pid:
            return  # in a forked child (e.g. its exit handlers) the workers are the parent's
        self.closed = True
        for worker in list(self._workers):
            self._stop(worker)
        self._workers.clear()
        self._selector.close()

    def _staff(self, everyone: bool = False) -> None:
        # Once math-verify is needed at all, start the whole pool: a worker started
        # mid-batch would spend its start-up (seconds of CPU) competing with the others.
        wanted = self.size if everyone or self.busy else 0
        while len(self._workers) < wanted:
            process = subprocess.Popen(
                [sys.executable, "-c", _LAUNCH, _WORKER_SCRIPT],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
            )
            os.set_blocking(process.stdout.fileno(), False)
            worker = _Worker(process=process, started=time.monotonic())
            self._selector.register(process.stdout, selectors.EVENT_READ, worker)
            self._workers.append(worker)
            self.counts.starts += 1

    def _dispatch(self) -> None:
        for worker in self._workers:
            if worker.ready and worker.job is None and self._queue:
                job = self._queue.popleft()
                worker.job, worker.op = job, None
                worker.dispatched = time.monotonic()
                worker.deadline = worker.dispatched + self._limit(job.request, None)
                _write_all(worker.process.stdin, (json.dumps(job.request) + "\n").encode())

    def _limit(self, request: dict, announced: float | None) -> float:
        """How long the worker may stay silent: the operation's own limit plus the grace period."""
        if announced is not None:
            return announced + self.grace
        limits = [t for t in (request.get("timeout"), request.get("budget")) if t is not None]
        return (min(limits) if limits else 3600.0) + self.grace

    def _collect(self):
        now = time.monotonic()
        deadlines = [w.deadline for w in self._workers if w.job is not None]
        deadlines += [w.started + START_TIMEOUT_SECONDS for w in self._workers if not w.ready]
        wait = max(0.0, min(deadlines) - now) if deadlines else 0.0
        for key, _ in self._selector.select(timeout=wait):
            worker: _Worker = key.data
            chunk = worker.process.stdout.read()
            if chunk is None:  # spurious wake-up: nothing to read after all
                continue
            if not chunk:  # EOF: the worker died (e.g. crashed in C code)
                self._replace(worker)
                continue
            worker.buffer += chunk
            while b"\n" in worker.buffer:
                line, worker.buffer = worker.buffer.split(b"\n", 1)
                reply = json.loads(line)
                if "ready" in reply:
                    worker.ready = True
                elif worker.job is None:
                    continue
                elif "op" in reply:
                    worker.op = reply["op"]
                    worker.deadline = time.monotonic() + self._limit(worker.job.request, reply["limit"])
                elif "timeout" in reply:
                    worker.job.blame(reply["timeout"])
                elif "done" in reply:
                    job, worker.job = worker.job, None
                    job.busy_seconds += time.monotonic() - worker.dispatched
                    self.counts.questions += 1
                    extra = {"timed_out": job.timed_out, "kills": job.kills, "busy_seconds": job.busy_seconds}
                    yield job.token, {**reply["done"], **extra}
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.job is not None and now >= worker.deadline:
                self._replace(worker)
            elif not worker.ready and now >= worker.started + START_TIMEOUT_SECONDS:
                self._stop(worker)
                self._workers.remove(worker)
                raise RuntimeError(f"a math-verify worker did not start within {START_TIMEOUT_SECONDS:.0f} s")

    def _replace(self, worker: _Worker) -> None:
        """Kill a stuck or dead worker; re-send its question with the culprit marked, first in line."""
        if not worker.ready:
            code = worker.process.poll()
            self._stop(worker)
            self._workers.remove(worker)
            raise RuntimeError(f"a math-verify worker exited during start-up (exit code {code}); see its stderr")
        job, op = worker.job, worker.op
        self._stop(worker)
        self._workers.remove(worker)
        self.counts.kills += 1
        if job is None:
            return
        spent = time.monotonic() - worker.dispatched
        job.busy_seconds += spent
        job.kills += 1
        if op is not None and op not in job.timed_out:
            job.blame(op)
        elif job.kills > 3:  # died with nothing (new) to blame: never loop forever
            raise RuntimeError("a math-verify worker died three times on one question without a culprit")
        if job.request.get("budget") is not None:
            job.request["budget"] = max(0.0, job.request["budget"] - spent)
        self._queue.appendleft(job)
        # _staff() starts the replacement on the next round.

    def _stop(self, worker: _Worker) -> None:
        try:
            self._selector.unregister(worker.process.stdout)
        except (KeyError, ValueError):
            pass
        if worker.process.poll() is None:
            worker.process.kill()
        worker.process.wait()
        for stream in (worker.process.stdin, worker.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


def _write_all(stream, data: bytes) -> None:
    """Unbuffered pipe writes may be partial; a dead worker is noticed by ``_collect``."""
    view = memoryview(data)
    try:
        while view:
            view = view[stream.write(view) :]
    except BrokenPipeError:
        pass
