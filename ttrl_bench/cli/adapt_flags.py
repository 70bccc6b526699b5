"""The adaptation flags of ``ttrl-bench run`` (defaults: the embedded profile, or the paper's recipe)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_adapt_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "adaptation",
        "Unset flags take the embedded profile for the embedded model (500 steps of 4 questions x 16 samples, "
        "16 votes, lr 7e-5 constant, KL 0, T 1.0, 8 new tokens) and the paper's recipe otherwise (lr 5e-7 "
        "cosine, 3% warm-up, KL 0.001, 64 votes / 32 samples, 8 questions a step, the paper's epochs, "
        "the task's max_new_tokens).",
    )
    g.add_argument("--methods", default="ttrl,leakage",
                   help="comma-separated: ttrl, soft-majority, self-certainty, neg-entropy, trajectory-logprob, "
                   "leakage (true labels: the upper bound), random, format (controls). Default: ttrl,leakage")
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
    g.add_argument("--processes", type=int, default=1,
                   help="training processes via `accelerate launch` (GPUs, or CPU processes with gloo); default 1")
    g.add_argument("--accelerate-config", type=Path, default=None, help="accelerate config file (e.g. DeepSpeed) for the launch")
    g.add_argument("--use-vllm", action="store_true", help="generate rollouts with TRL's vLLM integration (GPU path)")
    g.add_argument("--vllm-mode", default=None, choices=["colocate", "server"], help="TRL vLLM mode (server: start `trl vllm-serve` first)")
    g.add_argument("--report-to", default=None, help="TRL reporters: none, tensorboard, wandb (when installed)")
    g.add_argument("--lora-r", type=int, default=None,
                   help="LoRA rank through TRL's peft_config (needs peft); 0 = full fine-tuning (default). "
                   "The adapted model is saved merged, in the checkpoint's dtype")
    g.add_argument("--lora-alpha", type=float, default=None, help="LoRA alpha (default: 2 x --lora-r)")
    g.add_argument("--lora-targets", default=None,
                   help="LoRA target modules: all-linear (default) or comma-separated names, e.g. q_proj,v_proj")
