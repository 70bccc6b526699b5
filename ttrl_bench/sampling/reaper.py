"""Kill a process's helpers when it dies, also by SIGKILL: vLLM's engine core and its workers.

vLLM starts its engine in separate processes; when the process that owns them is killed with
SIGKILL it cannot shut them down, and they keep gigabytes of memory for as long as they run.
A parent-death signal would have to be set inside vLLM's own child processes (and fires when the
creating *thread* ends, not the process), so instead a small watcher process, started before the
engine, notes the owner's descendants every fraction of a second and, once the owner is gone,
terminates the ones it saw (then kills those that do not stop). psutil checks each process's
creation time, so a recycled pid is never hit.

    python -m ttrl_bench.sampling.reaper OWNER_PID
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

POLL_SECONDS = 0.25
GRACE_SECONDS = 3.0


def start_reaper() -> subprocess.Popen | None:
    """Start the watcher for this process; None where psutil is missing (it comes with vLLM)."""
    try:
        import psutil  # noqa: F401
    except ImportError:
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "ttrl_bench.sampling.reaper", str(os.getpid())],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C in the terminal is for the owner, which then shuts down cleanly
        close_fds=True,
    )


def stop_reaper(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def watch(owner_pid: int) -> None:
    import psutil

    try:
        owner = psutil.Process(owner_pid)
    except psutil.NoSuchProcess:
        return
    me = os.getpid()
    seen: dict[int, psutil.Process] = {}
    while owner.is_running() and owner.status() != psutil.STATUS_ZOMBIE:
        try:
            for child in owner.children(recursive=True):
                if child.pid != me:
                    seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            break
        seen = {pid: p for pid, p in seen.items() if p.is_running()}
        time.sleep(POLL_SECONDS)
    # The owner is gone: whatever it started and left running is an orphan now; its own children too.
    victims = {}
    for p in seen.values():
        try:
            if p.is_running():
                victims[p.pid] = p
                for grandchild in p.children(recursive=True):
                    victims.setdefault(grandchild.pid, grandchild)
        except psutil.NoSuchProcess:
            continue
    victims.pop(me, None)
    for p in victims.values():
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(list(victims.values()), timeout=GRACE_SECONDS)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop_reaper: the owner shut its engine down itself
    watch(int(sys.argv[1]))
