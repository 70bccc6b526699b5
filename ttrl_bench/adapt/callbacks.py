"""TrainerCallbacks: the train log (every step) and the periodic measurement of the test set."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm
from transformers import TrainerCallback

from ttrl_bench.measure.loop import Measurement

# The label-free criterion that picks the "best" step: the eval samples' mean majority ratio
# (self-agreement). True labels never choose a checkpoint; reported next to the last step.
BEST_CRITERION = "majority_ratio"
PROBE_PREFIX = "probe/"  # the probe's metrics as TRL's reporters show them (probe/pass@1, probe/maj@N, ...)


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


class LogCallback(TrainerCallback):
    """Every TRL log entry (reward, entropy, lengths, our diagnostics) into train_log.jsonl."""

    def __init__(self, log: TrainLog):
        self.log = log

    def on_log(self, args, state, control, logs=None, **kwargs):
        # TRL's end-of-training summary is left out: its runtime is wall-clock and its train_loss
        # covers only the steps since the last resume, so it would differ between a resumed run and
        # an uninterrupted one (the per-step rows hold the same losses). The probe's own report is in
        # the log already, as an "eval" row.
        if (state.is_world_process_zero and logs and "train_runtime" not in logs
                and not any(k.startswith(PROBE_PREFIX) for k in logs)):
            self.log.append({"step": state.global_step, "kind": "train", **{k: v for k, v in logs.items() if isinstance(v, (int, float))}})


class ProgressCallback(TrainerCallback):
    """One progress bar with the reward and diagnostics, instead of a printed dict per step."""

    KEYS = {"reward": "reward", "label_accuracy": "label acc", "majority_ratio": "maj ratio"}

    def __init__(self, desc: str):
        self.desc, self.bar = desc, None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.desc, unit="step")

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs:
            self.bar.set_postfix({v: f"{logs[k]:.2f}" for k, v in self.KEYS.items() if isinstance(logs.get(k), (int, float))})

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class ProbeCallback(TrainerCallback):
    """Measure the test set with the task's eval sampling every ``every`` steps and at the end."""

    def __init__(self, log: TrainLog, every: int, probe: Callable[[], Measurement], maj_key: str, skip_last: bool = False,
                 report: Callable[[dict], None] | None = None):
        self.log, self.every, self.probe, self.maj_key = log, every, probe, maj_key
        self.skip_last = skip_last
        self.report = report  # sends the probe's scores to TRL's reporters (--report-to), as probe/* metrics
        self.last: Measurement | None = None

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        last = step == state.max_steps
        if (last and self.skip_last) or not (step % self.every == 0 or last):
            return
        if state.is_world_process_zero:
            m = self.probe()
            self.last = m
            scores = m.summary.scores
            row = {
                "pass@1": scores["pass@1"]["mean"], self.maj_key: scores[self.maj_key]["mean"],
                "pass@1_stderr": scores["pass@1"]["stderr"], f"{self.maj_key}_stderr": scores[self.maj_key]["stderr"],
                "eval_majority_ratio": m.summary.votes.mean_majority_ratio,
            }
            self.log.append({"step": step, "kind": "eval", **row})
            if self.report is not None:
                self.report({f"{PROBE_PREFIX}{k.removeprefix('eval_')}": v for k, v in row.items() if not k.endswith("_stderr")})
