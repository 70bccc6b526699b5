#!/usr/bin/env bash
# TTRL's paper setting on one node of 8 GPUs (80 GB): Qwen2.5-Math-7B on AIME 2024, 64 votes / 32 samples,
# 8 questions a step, lr 5e-7 cosine, KL 0.001, T 1.0, 3072 new tokens, 80 epochs (the PAPER profile:
# every flag below is its default for a real model, written out so the recipe reads on its own).
# GPUs 6,7 serve vLLM (TRL server mode); GPUs 0-5 train under DeepSpeed ZeRO-3.
set -euo pipefail
MODEL=${MODEL:-Qwen/Qwen2.5-Math-7B}

# 1. the generation server (TRL's): data parallel over 2 GPUs
CUDA_VISIBLE_DEVICES=6,7 trl vllm-serve --model "$MODEL" --data-parallel-size 2 --port 8000 &
SERVER=$!
trap 'kill $SERVER' EXIT
until curl -sf localhost:8000/health/ >/dev/null; do sleep 5; done

# 2. base measurement, TTRL and the leakage upper bound, comparison table (vLLM backend for eval)
CUDA_VISIBLE_DEVICES=0,1,2,3,4,5 ttrl-bench run --task aime24 --model "$MODEL" --backend vllm \
  --methods ttrl,leakage --processes 6 --accelerate-config examples/paper_gpu/zero3.yaml \
  --use-vllm --vllm-mode server \
  --votes 64 --samples 32 --prompts-per-step 8 --lr 5e-7 --lr-scheduler cosine --beta 0.001 \
  --train-temperature 1.0 --train-max-new-tokens 3072 --eval-every 20
