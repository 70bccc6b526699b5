"""TrainerCallbacks: the train log (every step, ``train_log.TrainLog``) and the periodic measurement of the test set."""
from __future__ import annotations

import time
from collections.abc import Callable

from tqdm.auto import tqdm
from transformers import TrainerCallback

from ttrl_bench.adapt.train_log import TrainLog
from ttrl_bench.measure.loop import Measurement

PROBE_PREFIX = "probe/"  # the probe's metrics as TRL's reporters show them (probe/pass@1, probe/maj@N, ...)


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
            row = {"step": state.global_step, "kind": "train", **{k: v for k, v in logs.items() if isinstance(v, (int, float))}}
            self.log.append({**row, "peak_memory_gib": peak_memory_gib()})


def peak_memory_gib() -> float:
    """This process's peak memory: the GPU's allocated peak with CUDA, else the max RSS."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


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
    """Measure the test set every ``every`` steps (and at step 0 / the last step when asked).

    Every process calls ``probe`` (each measures a shard: ``adapt.probe``); it returns the
    Measurement on the main process, which logs it, and None elsewhere.
    """

    def __init__(self, log: TrainLog, every: int, probe: Callable[[], Measurement | None], maj_key: str,
                 skip_last: bool = False, at_start: bool = False, report: Callable[[dict], None] | None = None):
        self.log, self.every, self.probe, self.maj_key = log, every, probe, maj_key
        self.skip_last, self.at_start = skip_last, at_start
        self.report = report  # sends the probe's scores to TRL's reporters (--report-to), as probe/* metrics
        self.last: Measurement | None = None

    def _measure(self, step: int, state) -> None:
        from ttrl_bench.adapt.probe import PROBE_BACKEND
        from ttrl_bench.adapt.summary import eval_row

        start = time.perf_counter()
        m = self.probe()
        if m is not None and state.is_world_process_zero:
            self.last = m
            row = eval_row(step, m, self.maj_key, PROBE_BACKEND)
            self.log.append({**row, "seconds": time.perf_counter() - start})
            if self.report is not None:
                keys = ("pass@1", self.maj_key, "eval_majority_ratio")
                self.report({f"{PROBE_PREFIX}{k.removeprefix('eval_')}": row[k] for k in keys})

    def on_train_begin(self, args, state, control, **kwargs):
        if self.at_start and state.global_step == 0:
            self._measure(0, state)

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        last = step == state.max_steps
        if (last and self.skip_last) or not (step % self.every == 0 or last):
            return
        self._measure(step, state)
