"""Fault suite, part 6: ``kill -9`` of ``eval --backend vllm`` leaves no vLLM engine process behind.

Only the main process is killed (as `kill -9 PID` does), not its process group: the engine core
and its workers would otherwise live on, holding their memory.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil

from conftest import subprocess_env


def test_sigkill_of_a_vllm_eval_leaves_no_engine_process(eos_prone_model_dir, tmp_path):
    argv = ["eval", "--model", str(eos_prone_model_dir), "--backend", "vllm", "--limit", "64", "-n", "16",
            "--max-new-tokens", "32", "--out", str(tmp_path / "run")]
    proc = subprocess.Popen([sys.executable, "-m", "ttrl_bench.cli", *argv], cwd=tmp_path,
                            env=subprocess_env(VLLM_CPU_KVCACHE_SPACE="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    owner = psutil.Process(proc.pid)
    try:
        deadline = time.monotonic() + 300
        engine: list[psutil.Process] = []
        while not engine:  # the engine core is up: a descendant other than the watcher
            assert proc.poll() is None, f"eval ended (exit {proc.returncode}) before its engine was seen"
            assert time.monotonic() < deadline, "no vLLM engine process after 300 s"
            engine = [p for p in owner.children(recursive=True) if "reaper" not in " ".join(_cmdline(p))]
            time.sleep(0.2)
        time.sleep(2)  # let the engine start its own helpers too
        descendants = owner.children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _, alive = psutil.wait_procs(descendants, timeout=30)
    for p in alive:  # do not leave them to the other tests either
        p.kill()
    assert not alive, f"still running 30 s after the kill: {[(p.pid, _cmdline(p)[:3]) for p in alive]}"


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []
