"""``ttrl-bench eval`` on a real pretrained LM (Gemma 3 270M, base) with both backends.

    bash ../shared/models/gemma3-270m.sh /work/models/gemma3-270m   # once, ~2 min
    python benchmarks/bench_real_model.py --model /work/models/gemma3-270m [--cases plain,long,bf16,...]

Writes a small task the base model has headroom on (single-digit additions as
8-shot prompts, "3 + 4 = 7" per line; at temperature 1 Gemma 3 270M's maj@8 is
above its pass@1, so a majority vote holds information that TTRL can use;
answers are read from a 3-token completion, so the model's next invented line
never votes) and runs the real command line, ``python -m ttrl_bench.cli``, once
per case in a fresh run directory. Cases:

- ``hf`` / ``vllm``: the set, n=8, the checkpoint's dtype (bf16), default flags.
- ``vllm-long``: a 600-shot prompt (> 4k tokens per prompt, > 4k per call): the
  prompt lengths that crashed vLLM's CPU engine under seeded sampling.
- ``hf-fp32``: ``--dtype float32`` (the checkpoint is bf16).
- ``hf-nobos``: ``--no-add-bos`` (what a tokenizer rebuilt from GGUF does silently).
- ``vllm-tinykv``: ``--vllm-kv-cache-gb 0.01``: the engine cannot start; the command
  must exit 2 with one line naming the flag.
- ``run``: ``ttrl-bench run --methods ttrl,leakage`` for a few GRPO steps (fp32
  sampling; the policy trains with fp32 master weights), printing step time and
  memory; pass@1 / maj@8 of each method from the run's records.

Prints one table: exit code, wall time, the engine/model start time, tokens/s and
memory that ``eval`` reported on stderr, pass@1 and maj@8 (for ``run``: one row per
method, with the mean step time and the run's peak RSS).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
N = 8

TASK_YAML = """name: arith_fewshot
description: one-step arithmetic word problems as few-shot prompts (written by benchmarks/bench_real_model.py)
source:
  hub: local/arith_fewshot
  revision: null
  split: test
fields:
  id: id
  question: question
  answer: answer
prompt:
  template: "{question}"
answer_type: integer
generation:
  n: 8
  temperature: 1.0
  top_p: 1.0
  max_new_tokens: 3
"""

def addition(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    return f"{a} + {b} =", a + b


def write_task(root: Path, questions: int, shots: int, seed: int = 0) -> Path:
    """The task file (in root/tasks) and its data (root/arith.jsonl); returns the data path."""
    rng = random.Random(seed)
    examples = [addition(rng) for _ in range(shots)]
    prefix = "".join(f"{q} {a}\n" for q, a in examples)
    rows = []
    for i in range(questions):
        q, a = addition(rng)
        rows.append({"id": f"q{i:03d}", "question": f"{prefix}{q}", "answer": str(a)})
    (root / "tasks").mkdir(parents=True, exist_ok=True)
    (root / "tasks" / "arith_fewshot.yaml").write_text(TASK_YAML)
    data = root / f"arith-{shots}shot.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


SHOTS = 8
CASES = {
    "hf": dict(shots=SHOTS, flags=["--backend", "hf"]),
    "vllm": dict(shots=SHOTS, flags=["--backend", "vllm"]),
    "vllm-long": dict(shots=600, flags=["--backend", "vllm"]),
    "hf-fp32": dict(shots=SHOTS, flags=["--backend", "hf", "--dtype", "float32"]),
    "hf-nobos": dict(shots=SHOTS, flags=["--backend", "hf", "--no-add-bos"]),
    "vllm-tinykv": dict(shots=SHOTS, flags=["--backend", "vllm", "--vllm-kv-cache-gb", "0.01"]),
    # a few GRPO steps per method; fp32 sampling (bf16 matmuls are emulated on CPUs without AVX512-BF16)
    "run": dict(shots=SHOTS, command="run", flags=[
        "--backend", "hf", "--dtype", "float32", "--methods", "ttrl,leakage", "--steps", "8",
        "--prompts-per-step", "2", "--samples", "4", "--votes", "8", "--train-max-new-tokens", "3",
        "--eval-every", "4", "--lr", "1e-5"]),
}

STATS = re.compile(r"start ([\d.]+) s; (\d+) tokens generated in ([\d.]+) s \(([\d.]+) tokens/s\).*peak RSS ([\d.]+) GB"
                   r"(?: \+ engine ([\d.]+) GB)?")


def _scores(metrics: Path) -> dict:
    scores = json.loads(metrics.read_text())["scores"]
    return {"pass@1": round(scores["pass@1"]["mean"], 3), f"maj@{N}": round(scores[f"maj@{N}"]["mean"], 3)}


def _run_rows(out: Path, row: dict, methods: list[str]) -> list[dict]:
    """``run``: the base row and one row per adapted method, with its mean step time and peak memory."""
    rows = [{**row, "case": "run: base", **_scores(out / "base" / "metrics.json")}] if (out / "base" / "metrics.json").exists() else []
    for method in methods:
        mdir = out / method
        if not (mdir / "metrics.json").exists():
            continue
        log = [json.loads(line) for line in (mdir / "train_log.jsonl").read_text().splitlines() if line.strip()]
        train = [r for r in log if r.get("kind") == "train"]
        times = [r["step_time"] for r in train if isinstance(r.get("step_time"), (int, float))]
        rows.append({"case": f"run: {method}", "exit": row["exit"], "wall_s": row["wall_s"], **_scores(mdir / "metrics.json"),
                     "s_per_step": round(sum(times) / len(times), 1) if times else None,
                     "rss_gb": round(max((r.get("peak_memory_gib", 0) for r in train), default=0), 2)})
    return rows or [row]


def run_case(name: str, model: Path, root: Path, questions: int, threads: int) -> list[dict]:
    case = CASES[name]
    data = write_task(root, questions, case["shots"])
    out = root / "runs" / name
    command = case.get("command", "eval")
    cmd = [sys.executable, "-m", "ttrl_bench.cli", command, "--task", "arith_fewshot", "--data", str(data),
           "--model", str(model), "--out", str(out), "--no-leaderboard", "--threads", str(threads), *case["flags"]]
    env = {**os.environ, "TTRL_BENCH_TASKS": str(root / "tasks"), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    (root / f"{name}.stderr.txt").write_text(done.stderr)
    row = {"case": name, "exit": done.returncode, "wall_s": round(wall, 1)}
    stats = STATS.search(done.stderr)
    if stats:
        row.update(start_s=float(stats[1]), tokens=int(stats[2]), sample_s=float(stats[3]), tok_per_s=float(stats[4]),
                   rss_gb=float(stats[5]), engine_gb=float(stats[6] or 0))
    if command == "run":
        return _run_rows(out, row, case["flags"][case["flags"].index("--methods") + 1].split(","))
    if (out / "metrics.json").exists():
        row.update(_scores(out / "metrics.json"))
        config = json.loads((out / "config.json").read_text())
        row["chat_template"] = config["prompt_format"]["chat_template"]
    warnings = [line for line in done.stderr.splitlines() if "warning" in line.lower() and "BOS" in line]
    errors = [line for line in done.stderr.splitlines() if line.startswith("ttrl-bench: error")]
    row["note"] = (errors or warnings or [""])[0][:160]
    if done.returncode not in (0, 2):
        row["note"] = done.stderr.strip().splitlines()[-1][:160] if done.stderr.strip() else "no stderr"
    return [row]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("/work/models/gemma3-270m"))
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the eval process (hf backend)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the run directories here")
    args = ap.parse_args()
    if not (args.model / "config.json").is_file():
        sys.exit(f"--model: {args.model} is not a model directory; build it: bash ../shared/models/gemma3-270m.sh DIR")
    from tabulate import tabulate

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        rows = []
        for name in args.cases.split(","):
            for row in run_case(name, args.model, root, args.questions, args.threads):
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"{args.model.name}: {args.questions} questions x n={N}, {SHOTS}-shot additions, 3 new tokens, temperature 1; "
          f"{os.cpu_count()} cores")
    print(tabulate(rows, headers="keys"))


if __name__ == "__main__":  # required: vLLM starts its engine with multiprocessing "spawn"
    main()
