"""The base model's vote baseline: maj@N at the run's N and maj@votes at the adaptation's vote count.

"Does TTRL beat voting more samples without training?" needs the base model's majority vote over
as many samples as TTRL's label used (64 in the paper). So ``run`` samples the base model
M = max(N, votes) times per question, once, into RUN/base/samples.jsonl:

- the base record's scores (pass@1, maj@N, pass@k) use the FIRST N samples of each question, so the
  base row is measured exactly like each adapted model's N samples and paired statistics, ``check``
  and the leaderboards see the same n as before;
- ``metrics["maj@V"]`` (V = votes, when V != N) and ``extra["vote_baseline"]`` (per question: is the
  majority of the first V samples right) use the first V samples.

Identity and resume: the base measurement's sample count is part of the run's identity
(``identity["base_samples"]``, present only when M > N, so runs with votes <= N keep their old
identity and directory name). A run directory made before this change (base sampled N times)
with votes > N is therefore a different run and is refused with "use another --out", never mixed;
and a samples file whose questions hold another sample count is refused too (it would mix draws).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ttrl_bench.errors import UsageError
from ttrl_bench.grading import Grader
from ttrl_bench.measure.loop import Measurement
from ttrl_bench.measure.store import SampleStore
from ttrl_bench.measure.subsets import first_samples, votes_correct
from ttrl_bench.pipeline.config import Prepared
from ttrl_bench.pipeline.evaluate import measure_into


def base_samples(n: int, votes: int) -> int:
    return max(n, votes)


def identity_with_base_samples(identity: dict, n: int, votes: int) -> dict:
    """The run identity, plus the base measurement's sample count when it differs from N."""
    m = base_samples(n, votes)
    return {**identity, "base_samples": m} if m != n else dict(identity)


def measure_base(
    directory: Path, prep: Prepared, votes: int, backend: str, grader: Grader, desc: str, **sampler_kwargs,
) -> tuple[Measurement, dict, dict]:
    """Measure the base model with max(N, votes) samples a question.

    Returns (the N-sample view for the record, extra metrics {"maj@V": ...} or {}, the record's
    ``extra["vote_baseline"]``).
    """
    n = prep.params.n
    m_samples = base_samples(n, votes)
    store_path = directory / "samples.jsonl"
    if store_path.exists():
        counts = {len(c) for c in SampleStore(store_path).done().values()}
        if counts - {m_samples}:
            raise UsageError(
                f"{store_path}: holds {sorted(counts)} samples per question, this run needs {m_samples} "
                f"(max of -n {n} and --votes {votes}); use another --out"
            )
    full = measure_into(directory, replace(prep, params=replace(prep.params, n=m_samples)), prep.model_dir,
                        backend, grader, desc, **sampler_kwargs)
    view = first_samples(full, n)
    extra_metrics = {}
    if votes != n:
        key = f"maj@{votes}"
        extra_metrics[key] = first_samples(full, votes).summary.scores[key]
    baseline = {
        "votes": votes, "samples_per_question": m_samples,
        "maj_correct": votes_correct(full, votes),
        "note": f"base sampled {m_samples} times a question; scores use the first {n}, maj@{votes} the first {votes}",
    }
    return view, extra_metrics, baseline

