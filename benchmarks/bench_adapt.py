"""Benchmark: one GRPO step of ttrl-bench's ``ttrl`` method vs bare TRL GRPOTrainer.

Same model, same GRPOConfig (``adapt.config.grpo_config``: batch, group, generation
length, lr), same questions. The bare trainer's reward is a constant (no voting, no
grading, no diagnostics, no probe). ttrl-bench runs the whole ``adapt()`` path: voting with
the Grader, the diagnostics, the train log and the periodic probe, whose cost is spread
over the profile's ``eval_every`` steps (probe seconds / eval_every added to each step).

Step time is TRL's own ``step_time`` (logged every step), the first step dropped as warm-up
on both sides. Both run in this process, one after the other, with ``--threads`` torch threads.

    python benchmarks/bench_adapt.py                                   # embedded model, default profile
    python benchmarks/bench_adapt.py --model /work/models/gemma3-270m --steps 3 --prompts-per-step 2 \\
        --samples 4 --max-new-tokens 16 --data ARITH.jsonl                # Gemma 3 270M
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from tabulate import tabulate

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def bare_steps(cfg, model_dir: str, questions, out: str) -> list[float]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOTrainer

    import torch

    from ttrl_bench.adapt.config import grpo_config

    times: list[float] = []

    class Steps(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "step_time" in logs:
                times.append(logs["step_time"])

    def constant(completions, **_):
        return [0.0] * len(completions)

    args = grpo_config(cfg, out, processes=1, use_cpu=not torch.cuda.is_available(), bf16=torch.cuda.is_available())
    args.save_strategy = "no"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    trainer = GRPOTrainer(
        model=model, reward_funcs=[constant], args=args, processing_class=AutoTokenizer.from_pretrained(model_dir),
        train_dataset=Dataset.from_list([{"prompt": q.prompt} for q in questions]), callbacks=[Steps()],
    )
    trainer.train()
    return times


def ours_steps(cfg, model_dir: str, task: str, data: str | None, limit: int, n: int, out: str) -> tuple[list[float], list[float]]:
    from ttrl_bench.adapt.train import AdaptSpec, adapt
    from ttrl_bench.types import SamplingParams

    params = SamplingParams(n=n, temperature=1.0, top_p=1.0, max_new_tokens=cfg.max_new_tokens, seed=0)
    spec = AdaptSpec(task=task, model_dir=model_dir, out_dir=out, config=cfg, eval_sampling=params,
                     chat_template=False, data=data, limit=limit)
    adapt(spec, progress=False)
    rows = [json.loads(line) for line in (Path(out) / "train_log.jsonl").read_text().splitlines()]
    steps = [r["step_time"] for r in rows if r.get("kind") == "train" and "step_time" in r]
    probes = [r["seconds"] for r in rows if r.get("kind") == "eval" and "seconds" in r]
    return steps, probes


def main() -> None:
    from ttrl_bench.adapt.config import TINY
    from ttrl_bench.data import load_questions
    from ttrl_bench.demo import EMBEDDED_MODEL
    from ttrl_bench.tasks import get_task

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(EMBEDDED_MODEL))
    ap.add_argument("--task", default="synth_near")
    ap.add_argument("--data", default=None, help="local rows for the task (e.g. a few-shot arithmetic set)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--prompts-per-step", type=int, default=TINY.prompts_per_step)
    ap.add_argument("--samples", type=int, default=TINY.samples)
    ap.add_argument("--max-new-tokens", type=int, default=TINY.max_new_tokens)
    ap.add_argument("--eval-every", type=int, default=TINY.eval_every, help="the profile's probe interval (amortisation)")
    ap.add_argument("--probe-n", type=int, default=4, help="samples per question in the probe")
    ap.add_argument("--limit", type=int, default=16, help="questions (the probe measures all of them)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()

    import torch

    torch.set_num_threads(a.threads)
    cfg = replace(TINY, method="ttrl", steps=a.steps, prompts_per_step=a.prompts_per_step, samples=a.samples,
                  votes=a.samples, max_new_tokens=a.max_new_tokens, eval_every=max(1, a.steps // 2))
    questions = load_questions(get_task(a.task), data_path=a.data, limit=a.limit)
    with tempfile.TemporaryDirectory(prefix="bench-adapt-") as tmp:
        t0 = time.perf_counter()
        bare = bare_steps(cfg, a.model, questions, f"{tmp}/bare")
        t1 = time.perf_counter()
        ours, probes = ours_steps(cfg, a.model, a.task, a.data, a.limit, a.probe_n, f"{tmp}/ours")
        t2 = time.perf_counter()
    b = statistics.mean(bare[1:] or bare)
    o = statistics.mean(ours[1:] or ours)
    probe = statistics.mean(probes) if probes else 0.0
    amortised = o + probe / a.eval_every
    print(f"model {a.model}; {a.prompts_per_step} questions x {a.samples} samples a step, {a.max_new_tokens} new tokens; "
          f"{a.steps} steps each (first dropped); torch threads {a.threads}; wall {t1 - t0:.0f} s bare, {t2 - t1:.0f} s ours\n")
    rows = [
        ["bare TRL GRPOTrainer (constant reward)", f"{b:.3f}", "—"],
        ["ttrl-bench ttrl (vote, grade, diagnostics)", f"{o:.3f}", f"{100 * (o / b - 1):+.1f}%"],
        [f"  + probe ({probe:.2f} s) / eval_every {a.eval_every}", f"{amortised:.3f}", f"{100 * (amortised / b - 1):+.1f}%"],
    ]
    print(tabulate(rows, headers=["", "s / step", "overhead"], tablefmt="github"))
    print(f"\nper-step times: bare {[round(x, 3) for x in bare]}, ours {[round(x, 3) for x in ours]}")


if __name__ == "__main__":
    main()
