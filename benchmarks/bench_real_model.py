"""``ttrl-bench eval`` on a real pretrained LM (Gemma 3 270M, base) with both backends.

    bash ../shared/models/gemma3-270m.sh /work/models/gemma3-270m   # once, ~2 min
    python benchmarks/bench_real_model.py --model /work/models/gemma3-270m [--cases plain,long,bf16,...]

Writes a small arithmetic task the base model has headroom on (one-step word
problems as few-shot prompts: "Q: ... A: 7"; answers are read from a 6-token
completion, so the model's next invented question never votes) and runs the real
command line, ``python -m ttrl_bench.cli eval``, once per case in a fresh run
directory. Cases:

- ``hf`` / ``vllm``: the set, n=8, the checkpoint's dtype (bf16), default flags.
- ``vllm-long``: a 160-shot prompt (> 4k tokens per prompt, > 4k per call): the
  prompt lengths that crashed vLLM's CPU engine under seeded sampling.
- ``hf-fp32``: ``--dtype float32`` (the checkpoint is bf16).
- ``hf-nobos``: ``--no-add-bos`` (what a tokenizer rebuilt from GGUF does silently).
- ``vllm-tinykv``: ``--vllm-kv-cache-gb 0.01``: the engine cannot start; the command
  must exit 2 with one line naming the flag.

Prints one table: exit code, wall time, the engine/model start time, tokens/s and
memory that ``eval`` reported on stderr, pass@1 and maj@8.
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
  temperature: 0.7
  top_p: 0.95
  max_new_tokens: 6
"""

NAMES = ["Tom", "Ana", "Li", "Sam", "Mia", "Omar", "Zoe", "Ben"]
THINGS = ["apples", "pens", "coins", "books", "cards", "shells"]


def word_problem(rng: random.Random) -> tuple[str, int]:
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    kind = rng.choice(["more", "fewer", "times"])
    if kind == "more":
        return f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?", a + b
    if kind == "fewer":
        a = a + b
        return f"{name} has {a} {thing} and gives away {b}. How many {thing} does {name} have now?", a - b
    return f"{name} has {a} bags with {b} {thing} in each bag. How many {thing} does {name} have?", a * b


def write_task(root: Path, questions: int, shots: int, seed: int = 0) -> Path:
    """The task file (in root/tasks) and its data (root/arith.jsonl); returns the data path."""
    rng = random.Random(seed)
    examples = [word_problem(rng) for _ in range(shots)]
    prefix = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in examples)
    rows = []
    for i in range(questions):
        q, a = word_problem(rng)
        rows.append({"id": f"q{i:03d}", "question": f"{prefix}Q: {q}\nA:", "answer": str(a)})
    (root / "tasks").mkdir(parents=True, exist_ok=True)
    (root / "tasks" / "arith_fewshot.yaml").write_text(TASK_YAML)
    data = root / f"arith-{shots}shot.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


CASES = {
    "hf": dict(shots=4, flags=["--backend", "hf"]),
    "vllm": dict(shots=4, flags=["--backend", "vllm"]),
    "vllm-long": dict(shots=160, flags=["--backend", "vllm"]),
    "hf-fp32": dict(shots=4, flags=["--backend", "hf", "--dtype", "float32"]),
    "hf-nobos": dict(shots=4, flags=["--backend", "hf", "--no-add-bos"]),
    "vllm-tinykv": dict(shots=4, flags=["--backend", "vllm", "--vllm-kv-cache-gb", "0.01"]),
}

STATS = re.compile(r"start ([\d.]+) s; (\d+) tokens generated in ([\d.]+) s \(([\d.]+) tokens/s\).*peak RSS ([\d.]+) GB"
                   r"(?: \+ engine ([\d.]+) GB)?")


def run_case(name: str, model: Path, root: Path, questions: int, threads: int) -> dict:
    case = CASES[name]
    data = write_task(root, questions, case["shots"])
    out = root / "runs" / name
    cmd = [sys.executable, "-m", "ttrl_bench.cli", "eval", "--task", "arith_fewshot", "--data", str(data),
           "--model", str(model), "--out", str(out), "--no-leaderboard", "--threads", str(threads), *case["flags"]]
    env = {**os.environ, "TTRL_BENCH_TASKS": str(root / "tasks"), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    row = {"case": name, "exit": done.returncode, "wall_s": round(wall, 1)}
    stats = STATS.search(done.stderr)
    if stats:
        row.update(start_s=float(stats[1]), tokens=int(stats[2]), sample_s=float(stats[3]), tok_per_s=float(stats[4]),
                   rss_gb=float(stats[5]), engine_gb=float(stats[6] or 0))
    if (out / "metrics.json").exists():
        scores = json.loads((out / "metrics.json").read_text())["scores"]
        row.update({"pass@1": round(scores["pass@1"]["mean"], 3), f"maj@{N}": round(scores[f"maj@{N}"]["mean"], 3)})
        config = json.loads((out / "config.json").read_text())
        row["chat_template"] = config["prompt_format"]["chat_template"]
    warnings = [line for line in done.stderr.splitlines() if "warning" in line.lower() and "BOS" in line]
    errors = [line for line in done.stderr.splitlines() if line.startswith("ttrl-bench: error")]
    row["note"] = (errors or warnings or [""])[0][:160]
    if done.returncode not in (0, 2):
        row["note"] = done.stderr.strip().splitlines()[-1][:160] if done.stderr.strip() else "no stderr"
    return row


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
            rows.append(run_case(name, args.model, root, args.questions, args.threads))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"{args.model.name}: {args.questions} questions x n={N}, 6 new tokens, temperature 0.7; "
          f"{os.cpu_count()} cores")
    print(tabulate(rows, headers="keys"))


if __name__ == "__main__":  # required: vLLM starts its engine with multiprocessing "spawn"
    main()
