"""What ``run`` takes: ``RunConfig`` (the evaluation, the methods, the adaptation overrides) and
``AdaptOverrides``, checked at construction with the CLI's one-line errors."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ttrl_bench.adapt.config import check_reporters
from ttrl_bench.adapt.methods import parse_methods
from ttrl_bench.errors import UsageError
from ttrl_bench.pipeline.checks import check_int
from ttrl_bench.pipeline.config import EvalConfig

VLLM_MODES = ("colocate", "server")


@dataclass(frozen=True)
class AdaptOverrides:
    """Adaptation settings the user sets; ``None`` keeps the profile's value (the embedded profile for the
    embedded model, the paper's recipe for any other; see ``ttrl_bench.adapt.config``)."""

    steps: int | None = None  # 0: the paper's epochs for the task
    prompts_per_step: int | None = None
    samples: int | None = None
    votes: int | None = None
    lr: float | None = None
    lr_scheduler: str | None = None  # a transformers scheduler name
    beta: float | None = None
    train_temperature: float | None = None
    train_max_new_tokens: int | None = None
    eval_every: int | None = None
    save_every: int | None = None  # checkpoint every K steps (not part of the run's identity)
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] | None = None
    # --use-vllm colocate: share of the device's memory for TRL's engine (None: on CPU sized from the model,
    # on GPU TRL's default)
    train_vllm_memory_share: float | None = None
    report_to: str | None = None  # TRL reporters, comma-separated: none, tensorboard, wandb, trackio
    progress_weight: float | None = None  # progress, ttrl+progress: weight of the MRT progress bonus
    progress_answers: int | None = None  # progress, ttrl+progress: forced answers per episode prefix
    lora_r: int | None = None  # LoRA rank (0 = full fine-tuning)
    lora_alpha: float | None = None
    lora_targets: str | None = None  # "all-linear" or comma-separated module names

    def __post_init__(self) -> None:
        if self.vllm_mode is not None and self.vllm_mode not in VLLM_MODES:
            raise UsageError(f"--vllm-mode: expected one of {', '.join(VLLM_MODES)}, got {self.vllm_mode!r}")
        if self.train_vllm_memory_share is not None and not 0 < self.train_vllm_memory_share <= 1:
            raise UsageError(f"--train-vllm-memory-share: expected a share in (0, 1], got {self.train_vllm_memory_share}")
        if self.report_to is not None:
            check_reporters(self.report_to)
        if self.lr_scheduler is not None:
            from transformers.trainer_utils import SchedulerType

            known = [s.value for s in SchedulerType]
            if self.lr_scheduler not in known:
                raise UsageError(f"--lr-scheduler: expected one of {', '.join(known)}, got {self.lr_scheduler!r}")


@dataclass(frozen=True)
class RunConfig:
    """``ttrl-bench run``: measure the base model, adapt it with each method, measure again."""

    eval: EvalConfig = field(default_factory=EvalConfig)
    methods: tuple[str, ...] = ("ttrl", "leakage")  # names from ``ttrl_bench.adapt.methods.METHODS``
    adapt: AdaptOverrides = field(default_factory=AdaptOverrides)
    processes: int = 1  # training processes (``accelerate launch``) per method
    accelerate_config: str | None = None  # an accelerate config file (DeepSpeed, FSDP)
    eval_tasks: str | None = None  # "T1,T2": also measure base and adapted models on these tasks
    holdout: float | None = None  # adapt on the rest, report in-sample and held-out gains separately
    holdout_seed: int | None = None  # seed of the held-out split (default 0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", parse_methods(self.methods))
        if self.eval.backend == "openai":
            raise UsageError("--backend openai: `run` adapts the model's weights here and measures the adapted copies "
                             "in-process; use --backend hf or vllm for run, and openai for eval")
        check_int("--processes", self.processes, 1)
        if self.holdout is not None and not 0 < self.holdout < 1:
            raise UsageError(f"--holdout: must be a fraction strictly between 0 and 1, got {self.holdout}")
        if self.holdout is None and self.holdout_seed is not None:
            raise UsageError("--holdout-seed: needs --holdout FRACTION")
        if self.accelerate_config is not None and not Path(self.accelerate_config).is_file():
            raise UsageError(f"--accelerate-config: {self.accelerate_config} is not a file")
