"""Train the episodes model: ``python -m ttrl_bench.demo.train --recipe episodes``.

Same architecture and optimiser as the adder (``train.py``), a tokenizer with two
more characters (the episode marker ``;`` and the final-answer marker ``>``), and
one phase on the episodes corpus (``ttrl_bench.data.episodes``). It is a second
model rather than a retrained adder so that the adder's README numbers and
committed records stay valid. The recipe and probe log go to ``recipe.json``;
the model is saved after every probe, so a run stopped early leaves a usable model.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ttrl_bench.data.episodes import EXTRA_CHARS, EpisodeMix, episode_examples, split_attempts, vote_digits
from ttrl_bench.data.synthetic import held_out_pairs, test_split
from ttrl_bench.demo import EPISODES_MODEL
from ttrl_bench.demo.tokenizer import build_tokenizer
from ttrl_bench.demo.training import ARCH, make_model, train_phase

MAX_NEW_TOKENS = 32
# half the adder's width (one head of 64: vLLM's CPU attention needs head_dim 64): the episodes
# corpus is longer per example, and the model must train in minutes on 2 shared cores
EPISODES_ARCH = dict(ARCH, hidden_size=64, intermediate_size=256, num_attention_heads=1, num_key_value_heads=1)


@torch.no_grad()
def episodes_probe(model, tokenizer, n: int = 8, limit: int = 64) -> dict:
    """Final-answer pass@1, attempt accuracy, vote fidelity and attempts per answer at temperature 1."""
    model.eval()
    rows = test_split("episodes")[:limit]
    enc = tokenizer([r["question"] for r in rows], return_tensors="pt", padding=True)
    out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=MAX_NEW_TOKENS,
                         num_return_sequences=n, pad_token_id=tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    right = attempts_right = attempts_total = faithful = with_attempts = 0
    for i, text in enumerate(texts):
        answer = rows[i // n]["answer"]
        attempts, final = split_attempts(text)
        right += final == answer
        attempts_right += sum(a == answer for a in attempts)
        attempts_total += len(attempts)
        if attempts and final is not None:
            with_attempts += 1
            faithful += final == vote_digits(attempts)
    model.train()
    return {"episodes/pass@1": right / len(texts), "episodes/attempt_acc": attempts_right / max(attempts_total, 1),
            "episodes/vote_fidelity": faithful / max(with_attempts, 1), "episodes/attempts": attempts_total / len(texts)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", choices=["episodes"], default="episodes")
    ap.add_argument("--out", type=Path, default=EPISODES_MODEL, help="where to save (default: the shipped episodes model)")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--threads", type=int, default=2, help="torch threads; bit-identical results need the same count")
    ap.add_argument("--eval-every", type=int, default=150)
    ap.add_argument("--stop-after", type=int, default=None,
                    help="end after this many steps of the --steps schedule (the shipped model: 600 of 1200, "
                    "stopped there for time on a shared machine)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    mix = EpisodeMix(seed=args.seed)
    rng = random.Random(mix.seed)
    exclude = held_out_pairs(("episodes",))
    tokenizer = build_tokenizer(EXTRA_CHARS)
    model = make_model(tokenizer, EPISODES_ARCH)
    model.generation_config.do_sample = True
    model.generation_config.temperature = 1.0
    model.generation_config.top_k = 0
    start = time.time()

    def save(model, log, done: bool = False) -> None:
        args.out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(args.out, safe_serialization=True)
        tokenizer.save_pretrained(args.out)
        recipe = {
            "recipe": "episodes", "arch": EPISODES_ARCH, "parameters": sum(p.numel() for p in model.parameters()),
            "batch": args.batch, "seed": args.seed, "threads": args.threads, "mix": asdict(mix),
            "steps": args.steps, "stop_after": args.stop_after, "steps_done": log[-1]["step"] if log else 0,
            "finished": done, "peak_lr": args.lr,
            "schedule": "one-cycle, 5% warm-up", "optimizer": "AdamW(0.9, 0.98), wd 0.01, clip 1.0",
            "torch": torch.__version__, "train_seconds": round(time.time() - start, 1), "probe_log": log,
            "command": "python -m ttrl_bench.demo.train " + " ".join(
                ["--recipe", "episodes", *[a for a in (argv or []) if a not in ("--recipe", "episodes", "--recipe=episodes")]]),
        }
        (args.out / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")

    log: list = []
    train_phase(model, tokenizer, rng, mix, steps=args.steps, batch=args.batch, lr=args.lr, eval_every=args.eval_every,
                exclude=exclude, name="episodes", log=log, start=start, examples=episode_examples,
                probe=episodes_probe, checkpoint=save, stop_after=args.stop_after)
    save(model, log, done=True)
    print(f"saved to {args.out} in {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
