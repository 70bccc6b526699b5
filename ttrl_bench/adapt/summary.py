"""What the report says about one adaptation: label/reward accuracy early and late, and the
label-free best step, flagged when it carries the collapse signature.

The best step is chosen by the eval majority ratio (self-agreement, no labels), among
points measured with ONE sampler: the probe's (``probe.PROBE_BACKEND``), plus the final
measurement when the run's ``--backend`` is the same. A policy that collapses onto one
answer maximises that criterion; the signature is a majority ratio above the start's
while pass@k of the samples (k = n: did any sample get it right) fell below it. Such a
step is reported as suspect, not as "best".
"""
from __future__ import annotations

from collections.abc import Sequence

from ttrl_bench.adapt.probe import PROBE_BACKEND
from ttrl_bench.adapt.train_log import LogRow, ProbeRow, TrainStep
from ttrl_bench.measure.loop import Measurement

# The label-free criterion that picks the "best" step: the eval samples' mean majority ratio
# (self-agreement). True labels never choose a checkpoint; reported next to the last step.
BEST_CRITERION = "majority_ratio"


def eval_row(step: int, m: Measurement, maj_key: str, backend: str) -> dict:
    """The train-log row of one measurement of the test set."""
    scores = m.summary.scores
    pass_n = f"pass@{m.summary.n}"
    row = {
        "step": step, "kind": "eval", "backend": backend, "questions": m.summary.num_questions,
        "pass@1": scores["pass@1"]["mean"], maj_key: scores[maj_key]["mean"],
        # standard errors over questions, so figures can shade the curve's uncertainty
        "pass@1_stderr": scores["pass@1"]["stderr"], f"{maj_key}_stderr": scores[maj_key]["stderr"],
        "eval_majority_ratio": m.summary.votes.mean_majority_ratio,
    }
    if pass_n in scores:
        row[pass_n] = scores[pass_n]["mean"]
    return row


def _collapse(start: dict | None, best: dict, pass_n: str) -> str | None:
    if start is None or pass_n not in start or pass_n not in best or best["step"] == start["step"]:
        return None
    if best["eval_majority_ratio"] > start["eval_majority_ratio"] and best[pass_n] < start[pass_n]:
        return (
            f"step {best['step']}: majority ratio rose {start['eval_majority_ratio']:.3f} -> "
            f"{best['eval_majority_ratio']:.3f} while {pass_n} fell {start[pass_n]:.3f} -> {best[pass_n]:.3f} "
            "(collapse signature: consistent, less diverse, not more right)"
        )
    return None


def train_summary(log_rows: Sequence[LogRow], maj_key: str, final: Measurement, final_step: int, *,
                  backend: str = PROBE_BACKEND, start: Measurement | None = None) -> dict:
    """Diagnostics for the report. ``start`` is the base model measured with ``backend`` (the
    collapse reference when the backend is the probe's); otherwise the probe's step-0 row is."""
    # steps with a reward: not an end-of-training summary (older logs have one)
    train = [r.values for r in log_rows if isinstance(r, TrainStep) and "reward" in r.values]
    probes = [{"backend": PROBE_BACKEND, **r.as_dict()} for r in log_rows if isinstance(r, ProbeRow)]
    final_row = eval_row(final_step, final, maj_key, backend)
    same = backend == PROBE_BACKEND
    start_row = next((r for r in probes if r["step"] == 0), None)
    if start_row is None and same and start is not None:
        start_row = eval_row(0, start, maj_key, backend)
    if same:  # the final measurement is comparable with the probes: it is the last point
        probes = [r for r in probes if r["step"] != final_step]
    candidates = [r for r in probes if r["step"] > 0] + ([final_row] if same else [])

    def mean_of(rows, key):
        vals = [r[key] for r in rows if key in r]
        return sum(vals) / len(vals) if vals else None

    labelled = [r for r in train if "label_accuracy" in r]
    window = max(1, len(labelled) // 10)
    # the policy moves within a few steps (Adam's first updates are full-size), so "first" is 10 steps
    head = labelled[: min(10, window)]
    out = {
        "label_accuracy_first": mean_of(head, "label_accuracy"),
        "label_accuracy_last": mean_of(labelled[-window:], "label_accuracy"),
        "reward_accuracy_mean": mean_of(train, "reward_accuracy"),
        "best_step": None, "best_step_pass@1": None,
        "best_criterion": f"eval {BEST_CRITERION} (label-free), among {PROBE_BACKEND}-sampled points",
        "probe_backend": PROBE_BACKEND, "final_backend": backend,
        "collapse_warning": None, "final_step": final_step,
        "step_seconds_mean": mean_of(train[1:] or train, "step_time"),  # the first step warms up
        "probe_seconds_mean": mean_of(probes, "seconds"),
        "peak_memory_gib": max((r["peak_memory_gib"] for r in train if "peak_memory_gib" in r), default=None),
        "evals": [*probes, final_row],
    }
    if candidates:
        best = max(candidates, key=lambda r: (r["eval_majority_ratio"], r["step"]))
        out.update({"best_step": best["step"], "best_step_pass@1": best["pass@1"]})
        out["collapse_warning"] = _collapse(start_row, best, f"pass@{final.summary.n}")
    return out
