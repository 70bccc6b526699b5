"""The adaptation flags of ``ttrl-bench run`` (defaults: the embedded profile, or the paper's recipe)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ttrl_bench.adapt.methods import methods_help
from ttrl_bench.pipeline.config import EvalConfig
from ttrl_bench.pipeline.run_config import VLLM_MODES, AdaptOverrides, RunConfig


def add_adapt_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "adaptation",
        "Unset flags take the embedded profile for the embedded model (500 steps of 4 questions x 16 samples, "
        "16 votes, lr 7e-5 constant, KL 0, T 1.0, 8 new tokens) and the paper's recipe otherwise (lr 5e-7 "
        "cosine, 3% warm-up, KL 0.001, 64 votes / 32 samples, 8 questions a step, the paper's epochs, "
        "the task's max_new_tokens).",
    )
    g.add_argument("--methods", default="ttrl,leakage",
                   help="comma-separated methods (default: ttrl,leakage): " + methods_help())
    g.add_argument("--steps", type=int, default=None, help="optimisation steps per method")
    g.add_argument("--prompts-per-step", type=int, default=None, help="questions per step, all processes together")
    g.add_argument("--samples", type=int, default=None, help="completions per question in the gradient step (GRPO group)")
    g.add_argument("--votes", type=int, default=None, help="completions whose majority answer is the label (>= --samples; default: --samples times the "
                   "profile's ratio, 1 embedded, 2 paper); the extra ones are sampled for the vote only")
    g.add_argument("--lr", type=float, default=None, help="learning rate")
    g.add_argument("--lr-scheduler", default=None, help="transformers scheduler name (constant, cosine, ...)")
    g.add_argument("--beta", type=float, default=None, help="KL coefficient")
    g.add_argument("--train-temperature", type=float, default=None, help="rollout temperature during adaptation")
    g.add_argument("--train-max-new-tokens", type=int, default=None, help="rollout length limit during adaptation")
    g.add_argument("--eval-every", type=int, default=None, help="measure the test set every K steps")
    g.add_argument("--save-every", type=int, default=None,
                   help="write a resumable checkpoint every K steps (default: 50 embedded, about 20 s here; 5 paper); "
                   "a killed run resumes from the last one and ends exactly as an uninterrupted run")
    g.add_argument("--processes", type=int, default=1,
                   help="training processes via `accelerate launch` (GPUs, or CPU processes with gloo); default 1")
    g.add_argument("--accelerate-config", type=Path, default=None, help="accelerate config file (e.g. DeepSpeed) for the launch")
    g.add_argument("--use-vllm", action="store_true", help="generate rollouts with TRL's vLLM integration (GPU path)")
    g.add_argument("--vllm-mode", default=None, choices=list(VLLM_MODES), help="TRL vLLM mode (server: start `trl vllm-serve` first)")
    g.add_argument("--train-vllm-memory-share", type=float, default=None, metavar="SHARE",
                   help="--use-vllm colocate: share of the device's memory for TRL's engine (on CPU: of the RAM). "
                   "Default: on CPU, the model's weights plus a KV cache sized from its shape; on GPU, TRL's 0.3")
    g.add_argument("--progress-weight", type=float, default=None,
                   help="progress, ttrl+progress: weight of the MRT progress bonus added to the outcome reward (default 1.0)")
    g.add_argument("--progress-answers", type=int, default=None,
                   help="progress, ttrl+progress: forced answers per episode prefix (default 4)")
    g.add_argument("--report-to", default=None,
                   help="TRL reporters (GRPOConfig.report_to): none, tensorboard, wandb, trackio, comma-separated; they get "
                   "TRL's metrics, the diagnostics (label_accuracy, reward_accuracy, majority_ratio) and the test-set "
                   "probe (probe/pass@1, probe/maj@N, probe/majority_ratio). TensorBoard files: RUN/<method>/tensorboard")
    g.add_argument("--lora-r", type=int, default=None,
                   help="LoRA rank through TRL's peft_config (needs peft); 0 = full fine-tuning (default). "
                   "The adapted model is saved merged, in the checkpoint's dtype")
    g.add_argument("--lora-alpha", type=float, default=None, help="LoRA alpha (default: 2 x --lora-r)")
    g.add_argument("--lora-targets", default=None,
                   help="LoRA target modules: all-linear (default) or comma-separated names, e.g. q_proj,v_proj")
    g = p.add_argument_group("generalization", "Does the gain carry over to other tasks and to unseen questions?")
    g.add_argument("--eval-tasks", default=None, metavar="T1,T2",
                   help="after each adaptation also measure the adapted model (and the base model, once) on these "
                   "tasks, with the run's sampling settings")
    g.add_argument("--holdout", type=float, default=None, metavar="FRACTION",
                   help="hold out this share of the task's questions (at random): adaptation never sees them; the "
                   "report gives in-sample and held-out gains")
    g.add_argument("--holdout-seed", type=int, default=None, help="seed of the held-out split (default 0)")


def run_config_from_args(args: argparse.Namespace, eval_cfg: EvalConfig) -> RunConfig:
    """The flags of ``run`` as a typed ``RunConfig`` (nothing below the CLI sees argparse)."""
    overrides = AdaptOverrides(
        steps=args.steps, prompts_per_step=args.prompts_per_step, samples=args.samples, votes=args.votes,
        lr=args.lr, lr_scheduler=args.lr_scheduler, beta=args.beta, train_temperature=args.train_temperature,
        train_max_new_tokens=args.train_max_new_tokens, eval_every=args.eval_every, save_every=args.save_every,
        use_vllm=args.use_vllm,
        vllm_mode=args.vllm_mode, train_vllm_memory_share=args.train_vllm_memory_share, report_to=args.report_to, progress_weight=args.progress_weight,
        progress_answers=args.progress_answers, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
        lora_targets=args.lora_targets,
    )
    return RunConfig(
        eval=eval_cfg, methods=args.methods, adapt=overrides, processes=args.processes,
        accelerate_config=None if args.accelerate_config is None else str(args.accelerate_config),
        eval_tasks=args.eval_tasks, holdout=args.holdout, holdout_seed=args.holdout_seed,
    )
