#!/usr/bin/env bash
# TTRL on ONE GPU (24-80 GB) with LoRA: the policy's frozen base weights are not in the optimizer,
# so Adam's fp32 states cover only the adapter. vLLM colocated on the same GPU for the rollouts.
set -euo pipefail
MODEL=${MODEL:-Qwen/Qwen2.5-Math-7B}
ttrl-bench run --task aime24 --model "$MODEL" --backend vllm --methods ttrl \
  --use-vllm --vllm-mode colocate \
  --lora-r 64 --lora-alpha 128 --lora-targets all-linear \
  --votes 64 --samples 32 --prompts-per-step 8 --lr 1e-5 --train-max-new-tokens 3072
# LoRA usually wants a larger lr than full fine-tuning (1e-5 here vs the paper's 5e-7); untested at 7B.
