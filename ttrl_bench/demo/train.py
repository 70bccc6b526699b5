"""Train the embedded tiny model from scratch: ``python -m ttrl_bench.demo.train``.

The recipe (architecture, data mixture, optimiser, seed) is written next to the
weights in ``recipe.json``; rerunning this script on the same machine gives the
same weights (CPU, one fixed thread count, fixed seeds).
"""
from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import LlamaForCausalLM

from ttrl_bench.data.synthetic import MISCONCEPTION, PretrainMix, held_out_pairs
from ttrl_bench.demo.tokenizer import build_tokenizer
from ttrl_bench.demo.training import ARCH, make_model, train_phase

DEFAULT_OUT = Path(__file__).parent / "model"


def main(argv=None) -> None:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--recipe" in argv or any(a.startswith("--recipe=") for a in argv):
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--recipe", choices=["adder", "episodes"], default="adder")
        known, _ = pre.parse_known_args(argv)
        if known.recipe == "episodes":  # the episodes model has its own recipe and defaults
            from ttrl_bench.demo.train_episodes import main as train_episodes

            return train_episodes(argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", choices=["adder", "episodes"], default="adder",
                    help="adder: the shipped default model; episodes: the synth_episodes model (own flags, see --recipe episodes --help)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to save (default: the shipped model)")
    ap.add_argument("--steps", type=int, default=3000, help="phase 1: random errors only")
    ap.add_argument("--misconception-steps", type=int, default=600, help="phase 2: the 4-digit misconception added")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3, help="phase 1 peak learning rate")
    ap.add_argument("--misconception-lr", type=float, default=5e-4, help="phase 2 peak learning rate")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads; bit-identical results need the same count (the shipped weights: 1)")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--init", type=Path, default=None, help="skip phase 1: start phase 2 from this saved phase-1 model")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    base_mix = PretrainMix(seed=args.seed)
    rng = random.Random(base_mix.seed)
    exclude = held_out_pairs()
    tokenizer = build_tokenizer()
    log: list = []
    start = time.time()
    if args.init is None:
        model = make_model(tokenizer)
        train_phase(model, tokenizer, rng, base_mix, steps=args.steps, batch=args.batch, lr=args.lr,
                    eval_every=args.eval_every, exclude=exclude, name="phase1", log=log, start=start)
    else:
        model = LlamaForCausalLM.from_pretrained(args.init)
    n_params = sum(p.numel() for p in model.parameters())
    rng2 = random.Random(args.seed + 1)
    train_phase(model, tokenizer, rng2, MISCONCEPTION, steps=args.misconception_steps, batch=args.batch,
                lr=args.misconception_lr, eval_every=min(args.eval_every, 100), exclude=exclude, name="phase2",
                log=log, start=start)
    args.out.mkdir(parents=True, exist_ok=True)
    model.generation_config.do_sample = True
    model.generation_config.temperature = 1.0
    model.generation_config.top_k = 0
    model.save_pretrained(args.out, safe_serialization=True)
    tokenizer.save_pretrained(args.out)
    recipe = {
        "arch": ARCH, "parameters": n_params, "batch": args.batch, "seed": args.seed, "threads": args.threads,
        "phase1": {"mix": asdict(base_mix), "steps": args.steps, "peak_lr": args.lr, "from": str(args.init) if args.init else "scratch"},
        "phase2": {"mix": asdict(MISCONCEPTION), "steps": args.misconception_steps, "peak_lr": args.misconception_lr},
        "schedule": "one-cycle per phase, 5% warm-up", "optimizer": "AdamW(0.9, 0.98), wd 0.01, clip 1.0",
        "torch": torch.__version__, "train_seconds": round(time.time() - start, 1), "probe_log": log,
    }
    (args.out / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
    print(f"saved to {args.out} in {recipe['train_seconds']}s")


if __name__ == "__main__":
    main()
