"""Benchmark: the extra votes of one step (votes > samples), before and after issue 11.

- before: one ``model.generate`` per question (the pre-issue-11 ``extra_sampler``, copied below),
  with the checkpoint's generation_config merged in;
- after: ``adapt.policy.bind``'s sampler: TRL's rollout call (``_generate_single_turn``) for all
  questions of the step at once, with the rollout's GenerationConfig.

Same model, questions, counts and lengths; a real GRPOTrainer (not trained) provides the rollout.

    python benchmarks/bench_extra_votes.py                     # embedded model, 4 questions x 16 extra votes
    python benchmarks/bench_extra_votes.py --model /work/models/gemma3-270m --questions 2 --extra 4 --max-new-tokens 16
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from tabulate import tabulate

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    from ttrl_bench.adapt.config import TINY, grpo_config
    from ttrl_bench.adapt.policy import bind
    from ttrl_bench.adapt.reward import GroupReward
    from ttrl_bench.data import load_questions
    from ttrl_bench.demo import EMBEDDED_MODEL
    from ttrl_bench.tasks import get_task

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(EMBEDDED_MODEL))
    ap.add_argument("--task", default="synth_near")
    ap.add_argument("--data", default=None)
    ap.add_argument("--questions", type=int, default=4)
    ap.add_argument("--extra", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    prompts = [q.prompt for q in load_questions(get_task(a.task), data_path=a.data, limit=a.questions)]
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    from dataclasses import replace

    cfg = replace(TINY, samples=a.extra, prompts_per_step=1, max_new_tokens=a.max_new_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        args = grpo_config(cfg, tmp, processes=1, use_cpu=not torch.cuda.is_available(), bf16=False)
        trainer = GRPOTrainer(model=model, reward_funcs=[lambda completions, **_: [0.0] * len(completions)], args=args,
                              train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]), processing_class=tok)
    reward = GroupReward("ttrl", answer_type="integer", grader=None, group_size=a.extra, votes=2 * a.extra, seed=0)
    bind(reward, trainer, seed=0, rank=0)

    @torch.no_grad()
    def before(prompt: str, count: int) -> list[str]:  # the pre-issue-11 extra_sampler
        ids = torch.tensor([tok(prompt)["input_ids"]])
        model.eval()
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=cfg.temperature,
                             top_p=cfg.top_p, top_k=cfg.top_k or None, max_new_tokens=cfg.max_new_tokens,
                             num_return_sequences=count, pad_token_id=tok.pad_token_id)
        model.train()
        return tok.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)

    timings = {"before": [], "after": []}
    for _ in range(a.repeats):
        start = time.perf_counter()
        for p in prompts:
            before(p, a.extra)
        timings["before"].append(time.perf_counter() - start)
        start = time.perf_counter()
        reward.extra_sampler(prompts, a.extra)
        timings["after"].append(time.perf_counter() - start)
    b, af = statistics.median(timings["before"]), statistics.median(timings["after"])
    print(f"model {a.model}; {a.questions} questions x {a.extra} extra votes, {a.max_new_tokens} new tokens; "
          f"median of {a.repeats}; torch threads {a.threads}\n")
    print(tabulate([
        ["before: model.generate per question", f"{b:.2f}", "1.00"],
        ["after: TRL rollout, all questions in one call", f"{af:.2f}", f"{af / b:.2f}"],
    ], headers=["extra votes of one step", "seconds", "ratio"], tablefmt="github"))


if __name__ == "__main__":
    main()
