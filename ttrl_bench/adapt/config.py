"""``AdaptConfig`` (what the user chooses) and its translation into TRL's ``GRPOConfig``."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from ttrl_bench.errors import UsageError

# TRL's reporters (GRPOConfig.report_to) that ttrl-bench supports, and the module each one needs.
REPORTERS = {"none": None, "tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}

# The paper's epochs per benchmark (official verl scripts); other tasks default to 10.
PAPER_EPOCHS = {"aime24": 80, "aime25": 80, "amc23": 30, "math500": 10}


@dataclass(frozen=True)
class AdaptConfig:
    method: str = "ttrl"
    steps: int = 500
    prompts_per_step: int = 4  # distinct questions per optimisation step (all processes together)
    samples: int = 16  # G: completions per question in the gradient step
    votes: int = 16  # completions whose majority answer is the estimated label (>= samples)
    learning_rate: float = 7e-5
    lr_scheduler: str = "constant"
    warmup_ratio: float = 0.0
    beta: float = 0.0  # KL coefficient (TRL's default 0; the paper used 0.001)
    loss_type: str = "dapo"
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 8
    eval_every: int = 50
    save_every: int = 50  # checkpoint interval: a kill loses at most this many steps (~20 s here)
    seed: int = 0
    use_vllm: bool = False
    vllm_mode: str = "colocate"
    # --use-vllm colocate: share of the device's memory for TRL's engine (on CPU: of the RAM; TRL's
    # default 0.3 is 7 GiB of a 24 GiB machine, often more than is free beside training); None = TRL's
    vllm_memory_share: float | None = None
    report_to: str = "none"
    progress_weight: float = 1.0  # progress methods: weight of the MRT bonus
    progress_answers: int = 4  # progress methods: forced answers per episode prefix
    # LoRA through TRL's peft_config (0 = full fine-tuning); alpha None = 2 x r
    lora_r: int = 0
    lora_alpha: float | None = None
    lora_targets: str = "all-linear"  # peft target_modules: "all-linear" or comma-separated module names

    def validate(self) -> None:
        checks = [
            (self.steps >= 1, "--steps", "an integer >= 1"),
            (self.prompts_per_step >= 1, "--prompts-per-step", "an integer >= 1"),
            (self.samples >= 2, "--samples", "an integer >= 2 (GRPO needs a group)"),
            (self.votes >= self.samples, "--votes", f"at least --samples ({self.samples})"),
            (self.learning_rate > 0, "--lr", "a positive number"),
            (self.eval_every >= 1, "--eval-every", "an integer >= 1"),
            (self.save_every >= 1, "--save-every", "an integer >= 1"),
            (self.max_new_tokens >= 1, "--train-max-new-tokens", "an integer >= 1"),
            (self.temperature > 0, "--train-temperature", "a positive number (RL needs sampling)"),
            (self.progress_weight >= 0, "--progress-weight", "a number >= 0"),
            (self.progress_answers >= 1, "--progress-answers", "an integer >= 1"),
            (self.lora_r >= 0, "--lora-r", "an integer >= 0 (0 = full fine-tuning)"),
            (self.lora_alpha is None or self.lora_alpha > 0, "--lora-alpha", "a positive number"),
            (bool(self.lora_targets.strip(",").strip()), "--lora-targets", "'all-linear' or comma-separated module names"),
        ]
        for ok, flag, expected in checks:
            if not ok:
                raise UsageError(f"{flag}: must be {expected}")
        for flag, value in (("--lr", self.learning_rate), ("--beta", self.beta), ("--train-temperature", self.temperature)):
            if not math.isfinite(value):
                raise UsageError(f"{flag}: must be a finite number, got {value}")
        check_reporters(self.report_to)
        from transformers import SchedulerType  # names transformers would reject only after the base measurement

        schedulers = [s.value for s in SchedulerType]
        if self.lr_scheduler not in schedulers:
            raise UsageError(f"--lr-scheduler: unknown scheduler {self.lr_scheduler!r}; expected one of {', '.join(schedulers)}")


def check_reporters(report_to: str) -> list[str]:
    """``--report-to`` as TRL's list; an unknown or uninstalled reporter is one line, before any work."""
    import importlib.util

    names = [n.strip() for n in report_to.split(",") if n.strip()] or ["none"]
    for name in names:
        if name not in REPORTERS:
            raise UsageError(f"--report-to: unknown reporter {name!r}; expected one of {', '.join(REPORTERS)} (comma-separated)")
        module = REPORTERS[name]
        if module is not None and importlib.util.find_spec(module) is None:
            raise UsageError(f"--report-to {name}: the package {module!r} is not installed; expected pip install {module}")
    if "none" in names and len(names) > 1:
        raise UsageError("--report-to: 'none' cannot be combined with other reporters")
    return names


# Defaults: the embedded tiny model, and the paper's recipe for real models (Zuo et al. 2025, the official verl scripts),
# which users override flag by flag. The tiny profile was tuned on synth_near with an earlier phase-2
# variant of the model (2 cores): lr 2e-5 and 5e-5 for 300 steps gave pass@1 82 and 90, 5e-5 for 600
# steps 95, 7e-5 for 500 steps 96, and 1e-4 collapsed by step 100 to a consistent wrong answer (31).
TINY = AdaptConfig()
PAPER = AdaptConfig(
    steps=0, prompts_per_step=8, samples=32, votes=64, learning_rate=5e-7, lr_scheduler="cosine",
    warmup_ratio=0.03, beta=0.001, temperature=1.0, top_p=1.0, max_new_tokens=3072, eval_every=20,
    save_every=5,  # a paper step (8 prompts x 64 votes x 3072 tokens) takes about a minute on 8 GPUs
)


def paper_steps(task: str, num_questions: int, prompts_per_step: int) -> int:
    epochs = PAPER_EPOCHS.get(task, 10)
    return max(1, math.ceil(epochs * num_questions / prompts_per_step))


def check_group_layout(per_device_batch: int, steps_per_generation: int, group: int, processes: int) -> None:
    """Fail loudly if TRL's batch layout would split a question's group across processes.

    Each process generates ``per_device_batch * steps_per_generation`` completions, cut
    into consecutive groups of ``group``; the majority vote needs a whole group in one
    process, so that number must be a multiple of the group size.
    """
    local = per_device_batch * steps_per_generation
    if local % group:
        raise UsageError(
            f"--prompts-per-step/--samples: each of {processes} process(es) would generate {local} completions, "
            f"not a multiple of the group size {group}; a group would be split across processes"
        )


def per_device_batch(cfg: AdaptConfig, processes: int) -> int:
    """Completions per process and step; refuses a layout that would split a question's group.

    Called by ``grpo_config`` in each training process, and by ``ttrl-bench run`` before it
    measures or launches anything, so a bad --prompts-per-step/--processes fails at once.
    """
    if cfg.prompts_per_step % processes:
        raise UsageError(
            f"--prompts-per-step: {cfg.prompts_per_step} is not divisible by the {processes} processes; "
            "each process must hold whole questions"
        )
    per_device = cfg.prompts_per_step // processes * cfg.samples
    check_group_layout(per_device, 1, cfg.samples, processes)
    return per_device


def grpo_config(cfg: AdaptConfig, output_dir: str, *, processes: int, use_cpu: bool, bf16: bool):
    from trl import GRPOConfig

    per_device = per_device_batch(cfg, processes)
    return GRPOConfig(
        output_dir=output_dir,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_generations=cfg.samples,
        max_completion_length=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=math.ceil(cfg.warmup_ratio * cfg.steps),
        beta=cfg.beta,
        loss_type=cfg.loss_type,
        max_steps=cfg.steps,
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg.save_every,
        save_total_limit=1,
        save_only_model=False,
        report_to=check_reporters(cfg.report_to),
        use_cpu=use_cpu,
        bf16=bf16,
        seed=cfg.seed,
        data_seed=cfg.seed,
        gradient_checkpointing=False,
        remove_unused_columns=False,
        use_vllm=cfg.use_vllm,
        vllm_mode=cfg.vllm_mode,
        **({"vllm_gpu_memory_utilization": cfg.vllm_memory_share} if cfg.vllm_memory_share is not None else {}),
        disable_tqdm=False,
    )


def colocated_cpu_memory_share(model_dir: Path) -> float:
    """TRL's colocated vLLM engine on CPU: the share of the RAM its weights and KV cache need.

    On CPU, vLLM reserves ``gpu_memory_utilization`` x the RAM for the engine (weights,
    activations, then the KV cache from what is left); TRL cannot pass an explicit KV size.
    So: the checkpoint's bytes (as vLLM loads them: the declared dtype) + the same model-sized
    KV cache the eval engine gets + 1 GiB for activations, as a share of the RAM.
    """
    import os

    from transformers import AutoConfig

    from ttrl_bench.sampling.vllm import checkpoint_dtype, context_length, default_cpu_kv_cache_gb

    config = AutoConfig.from_pretrained(model_dir)
    dtype = checkpoint_dtype(config)
    weights_gb = sum(f.stat().st_size for f in Path(model_dir).glob("*.safetensors")) / 2**30
    kv_gb = default_cpu_kv_cache_gb(config, context_length(config) or 2048, dtype)
    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return round(min(0.9, (weights_gb + kv_gb + 1.0) / ram_gb), 4)


def peft_config(cfg: AdaptConfig):
    """TRL's ``peft_config`` for ``--lora-r`` > 0, else None (full fine-tuning)."""
    if cfg.lora_r == 0:
        return None
    try:
        from peft import LoraConfig
    except ImportError:
        raise UsageError("--lora-r: LoRA needs the peft package (pip install peft)") from None
    names = [t.strip() for t in cfg.lora_targets.split(",") if t.strip()]
    targets = "all-linear" if names == ["all-linear"] else names
    return LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha or 2 * cfg.lora_r, target_modules=targets, lora_dropout=0.0,
        task_type="CAUSAL_LM",
    )


def with_overrides(base: AdaptConfig, **overrides) -> AdaptConfig:
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})
