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
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ttrl_bench.data.synthetic import MISCONCEPTION, PretrainMix, held_out_pairs, pretrain_examples, test_split
from ttrl_bench.demo.tokenizer import build_tokenizer

DEFAULT_OUT = Path(__file__).parent / "model"

ARCH = dict(
    hidden_size=128,
    intermediate_size=512,
    num_hidden_layers=4,
    num_attention_heads=2,
    num_key_value_heads=2,
    head_dim=64,  # vLLM's CPU attention refuses 16; 64 works
    max_position_embeddings=64,
    tie_word_embeddings=False,  # TRL's vLLM weight sync has tripped on tied embeddings
    rms_norm_eps=1e-5,
)


def make_model(tokenizer, arch: dict | None = None) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **(ARCH if arch is None else arch),
    )
    return LlamaForCausalLM(config)


def encode_batch(tokenizer, pairs):
    """Right-padded ids with loss only on the answer and its EOS."""
    seqs, labels = [], []
    for prompt, answer in pairs:
        p = tokenizer(prompt)["input_ids"]
        a = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        seqs.append(p + a)
        labels.append([-100] * len(p) + a)
    width = max(map(len, seqs))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
    lab = torch.tensor([l + [-100] * (width - len(l)) for l in labels])
    mask = (torch.arange(width)[None, :] < torch.tensor([len(s) for s in seqs])[:, None]).long()
    return ids, lab, mask


@torch.no_grad()
def quick_eval(model, tokenizer, split: str, n: int = 16, limit: int = 64) -> dict:
    """pass@1 and maj@n at temperature 1 on a test split (a training-time probe only)."""
    model.eval()
    rows = test_split(split)[:limit]
    enc = tokenizer([r["question"] for r in rows], return_tensors="pt", padding=True)
    out = model.generate(
        **enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=8,
        num_return_sequences=n, pad_token_id=tokenizer.pad_token_id,
    )
    texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    correct = maj = 0
    for i, row in enumerate(rows):
        answers = [t.strip() for t in texts[i * n : (i + 1) * n]]
        correct += sum(a == row["answer"] for a in answers)
        maj += Counter(answers).most_common(1)[0][0] == row["answer"]
    model.train()
    return {"pass@1": correct / (n * len(rows)), f"maj@{n}": maj / len(rows)}


def adder_probe(model, tokenizer) -> dict:
    return {f"{s}/{k}": v for s in ("near", "shift") for k, v in quick_eval(model, tokenizer, s).items()}


def train_phase(model, tokenizer, rng, mix, *, steps: int, batch: int, lr: float, eval_every: int,
                exclude: set[str], name: str, log: list, start: float,
                examples=pretrain_examples, probe=adder_probe, checkpoint=None, stop_after: int | None = None) -> None:
    """AdamW with a one-cycle schedule over ``steps`` batches of ``examples(rng, batch, mix, exclude)``.

    ``checkpoint(model, log)``, if given, is called after each probe (the episodes recipe saves
    there, so a run stopped early still leaves its last probed model). ``stop_after`` ends the
    phase after that many steps of the ``steps``-long schedule (probed and checkpointed).
    """
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    model.train()
    for step in range(1, steps + 1):
        ids, labels, mask = encode_batch(tokenizer, examples(rng, batch, mix, exclude))
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0:
            print(f"{name} step {step} loss {loss.item():.4f} {time.time() - start:.0f}s", flush=True)
        last = step == steps or step == stop_after
        if step % eval_every == 0 or last:
            log.append({"phase": name, "step": step, "loss": loss.item(), **probe(model, tokenizer)})
            print(json.dumps(log[-1]), flush=True)
            if checkpoint is not None:
                checkpoint(model, log)
        if step == stop_after:
            break


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
