"""The built wheel works without the source tree: tasks, eval and run on the embedded default.

Builds the wheel from this checkout, installs it (without dependencies: they are the ones this
environment already has) into a fresh virtualenv that sees the system site-packages, and runs
the console script from an empty directory with no PYTHONPATH, so only the wheel's files count.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    dist, venv = root / "dist", root / "venv"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(dist), str(REPO)], check=True, cwd=root)
    wheels = list(dist.glob("ttrl_bench-*.whl"))
    assert len(wheels) == 1, wheels
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", str(wheels[0])],
                   check=True)
    return venv


def _run(venv: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TTRL_BENCH_TASKS", "PYTEST_CURRENT_TEST")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run([str(venv / "bin" / "ttrl-bench"), *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def test_the_wheel_imports_from_the_venv_not_the_checkout(wheel_venv, tmp_path):
    out = subprocess.run([str(wheel_venv / "bin" / "python"), "-c", "import ttrl_bench; print(ttrl_bench.__file__)"],
                         cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}).stdout.strip()
    assert Path(out).resolve().is_relative_to(wheel_venv.resolve()), out


def test_wheel_runs_tasks_eval_and_run_on_the_embedded_default(wheel_venv, tmp_path):
    listed = _run(wheel_venv, tmp_path, "tasks")
    assert listed.returncode == 0, listed.stderr
    for name in ("synth_near", "synth_shift", "aime24", "math500", "gsm8k"):
        assert name in listed.stdout

    evaluated = _run(wheel_venv, tmp_path, "eval", "--limit", "4", "-n", "2", "--out", "ev", "--no-leaderboard")
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["num_questions"] == 4 and metrics["n"] == 2

    ran = _run(wheel_venv, tmp_path, "run", "--limit", "4", "-n", "2", "--steps", "1", "--eval-every", "1",
               "--methods", "ttrl", "--out", "rn", "--no-leaderboard")
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "rn" / "ttrl" / "records").is_dir() and (tmp_path / "rn" / "report.md").is_file()
