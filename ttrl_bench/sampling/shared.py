"""One loaded model for several sampling loops.

``measure.loop.sample_all`` builds its sampler from a factory and closes it when it is done,
which is right for one loop. ``ttrl-bench budget`` runs two loops on the same model (the
eval's samples, then the forced answers) and, with ``--run --prover``, one prover for every
member of a run: building the sampler per loop would load the model (for vLLM: start an
engine, tens of seconds to many minutes on a CPU) once per loop. ``SharedSampler.get`` is a
factory for those loops that builds the sampler once and hands out views whose ``close``
does nothing; the owner closes the real one with ``SharedSampler.close``.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from ttrl_bench.sampling.base import Sampler


class _KeptOpen:
    """A view of a shared sampler: everything but ``close`` (a no-op) goes to the sampler."""

    def __init__(self, sampler: Sampler, start_seconds: float):
        self._sampler = sampler
        self.start_seconds = start_seconds  # what this loop waited for the model (0 when reused)

    def __getattr__(self, name: str):
        return getattr(self._sampler, name)

    def close(self) -> None:
        pass


class SharedSampler:
    def __init__(self, factory: Callable[[], Sampler]):
        self._factory = factory
        self._sampler: Sampler | None = None
        self.builds = 0  # how many times the model was loaded (0 or 1)

    @property
    def loaded(self) -> bool:
        return self._sampler is not None

    def get(self) -> Sampler:
        """The sampler (built on the first call) behind a view that ``sample_all`` may close."""
        if self._sampler is not None:
            return _KeptOpen(self._sampler, 0.0)  # type: ignore[return-value]
        started = time.perf_counter()
        self._sampler = self._factory()
        self.builds += 1
        start = getattr(self._sampler, "start_seconds", time.perf_counter() - started)
        return _KeptOpen(self._sampler, start)  # type: ignore[return-value]

    def close(self) -> None:
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.close()

    def __enter__(self) -> "SharedSampler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
