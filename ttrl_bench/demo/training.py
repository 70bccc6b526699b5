"""What both training recipes of the embedded models share: the architecture, batching, the AdamW
one-cycle phase and the training-time probe. The recipes are ``train.py`` (the adder, shipped as
``demo/model``) and ``train_episodes.py`` (``demo/model_episodes``)."""
from __future__ import annotations

import json
import time
from collections import Counter

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ttrl_bench.data.synthetic import pretrain_examples, test_split

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
