"""Shared fixtures: a tiny randomly initialised Llama with the project's character tokenizer.

Everything here is offline: the model is built and saved by the test session itself.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

# Set before transformers/datasets/tokenizers are imported by any test module:
# there is no hub access on these machines, and forked workers must not deadlock
# on the tokenizers thread pool.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import ttrl_bench  # noqa: E402

REPO = Path(ttrl_bench.__file__).resolve().parent.parent  # the checkout the tests run against


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: this checkout importable, offline, no test-runner leftovers."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("TTRL_BENCH_TASKS", None)
    env.update(extra)
    return env


def interrupt_cli(argv: list[str], cwd: Path, ready: Callable[[], bool], *, log: Path, waiting_for: str,
                  sig: int = signal.SIGKILL, within: float = 300.0) -> int:
    """Run ``python -m ttrl_bench.cli ARGV`` in a session of its own (stderr into ``log``), send ``sig`` to its
    whole process group as soon as ``ready()`` holds (as Ctrl-C or a kill in a terminal reaches every process
    the run started), and return its exit code. Fails if the run ends first or ``waiting_for`` does not come
    within ``within`` seconds; the group is never left running."""
    with open(log, "w") as stderr:  # a file, not a pipe: a full pipe would stall the run
        proc = subprocess.Popen([sys.executable, "-m", "ttrl_bench.cli", *argv], cwd=cwd, env=subprocess_env(),
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + within
        while not ready():
            assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before {waiting_for}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no {waiting_for} after {within:g} s"
            time.sleep(0.01)
        os.killpg(proc.pid, sig)
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_report_command(name: str, *argv: str) -> int:
    """``ttrl-bench NAME ARGV`` (``leaderboard``, ``check``) through the parser and handler ``cli.report_cmds``
    gives it; a UsageError reaches the test as an exception rather than as exit 2."""
    import argparse

    from ttrl_bench.cli.report_cmds import add_check_parser, add_leaderboard_parser

    parser = argparse.ArgumentParser()
    {"leaderboard": add_leaderboard_parser, "check": add_check_parser}[name](parser.add_subparsers())
    args = parser.parse_args([name, *argv])
    return args.func(args)


def complete_questions(data: bytes) -> tuple[int, list[str]]:
    """(byte length of the complete questions at the head of a samples file, their ids in order): a question
    is complete when all its ``num_samples`` lines are there; a torn last line has no "\\n" and is no sample."""
    end, ids, count, offset = 0, [], 0, 0
    for line in data.split(b"\n")[:-1]:
        offset += len(line) + 1
        row = json.loads(line)
        count += 1
        if count == row["num_samples"]:
            ids.append(row["question_id"])
            end, count = offset, 0
    return end, ids


TINY_MODEL_SEED = 0
# The embedded model's architecture (ttrl_bench.demo.training.ARCH), made smaller for fast tests;
# rms_norm_eps stays transformers' default, as the test model was first built with it.
TINY_OVERRIDES = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=1, num_key_value_heads=1,
    rms_norm_eps=1e-6,
)


def tiny_arch() -> dict:
    """The test model's architecture: the embedded model's, made smaller."""
    from ttrl_bench.demo.training import ARCH

    return {**ARCH, **TINY_OVERRIDES}


def build_tiny_model(out: Path, seed: int = TINY_MODEL_SEED) -> Path:
    """Save a deterministic random tiny Llama and the character tokenizer (safetensors) into ``out``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ttrl_bench.demo.tokenizer import build_tokenizer
    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **tiny_arch(),
    )
    # fork_rng: seeding must not leak into the global RNG state other tests see.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """Directory of a tiny random LlamaForCausalLM + tokenizer (BOS added by its post-processor)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def eos_prone_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with its EOS output row set to 1.5x the row of "+".

    The random model's greedy decoding never emits EOS (it loops, often on "+");
    this one stops where "+" would have won, so greedy runs end by "stop" on some
    prompts and by "length" on others, and both kinds of token accounting get checked.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("eos_prone_model")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    plus = tokenizer.convert_tokens_to_ids("+")
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id] = 1.5 * model.lm_head.weight[plus]
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


GOLDEN = Path(__file__).parent / "golden"


def golden_view(name: str, text: str) -> str:
    """What a golden file pins: an HTML page's table only (its inline CSS/JS may change freely)."""
    if name.endswith(".html"):
        import re

        tables = re.findall(r"<table\b.*?</table>", text, flags=re.S)
        assert tables, f"{name}: the page has no table"
        return "\n".join(tables) + "\n"
    return text


def assert_golden(name: str, text: str) -> None:
    """Compare with tests/golden/<name>. UPDATE_GOLDEN=1 rewrites the file and then FAILS, so an update
    run never passes by construction: review ``git diff tests/golden/`` and run again without it."""
    path = GOLDEN / name
    view = golden_view(name, text)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(view, encoding="utf-8")
        pytest.fail(f"{path} rewritten (UPDATE_GOLDEN=1); review the diff and run again without UPDATE_GOLDEN")
    assert path.exists(), f"{path} missing: run UPDATE_GOLDEN=1 python -m pytest {__file__}"
    assert view == path.read_text(encoding="utf-8")
