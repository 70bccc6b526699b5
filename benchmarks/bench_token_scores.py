"""Benchmark: peak memory and time of the logit rewards' per-token scores, old way vs chunked.

Input: the (G, T, V) bf16 logits a forward pass yields for one group (V = 262,144: Gemma 3).
- old: the pre-issue-11 scorer: the logits copied to fp32 on the CPU (G, T, V), a second
  (G, T, V) fp32 tensor filled with the completion positions, then softmax per sample.
- chunked: ``ttrl_bench.adapt.token_scores``: streaming logsumexp over 256 positions x 32k
  vocabulary entries at a time, on the logits' device; returns (G, T) tensors only.

Each variant runs in a fresh subprocess; its peak is the rise of the process's max RSS
above the RSS once the input logits exist (so the logits themselves are not counted).

    python benchmarks/bench_token_scores.py                      # G=8, T=512, V=262144; old at G=1,2
    python benchmarks/bench_token_scores.py --old-groups 1 2 8   # old at G=8 too (needs ~11 GB free)
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

from tabulate import tabulate


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(variant: str, G: int, T: int, V: int) -> dict:
    import torch

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    logits = torch.empty(G, T, V, dtype=torch.bfloat16)
    for g in range(G):  # filled 4 positions at a time: the fp32 temporaries stay small (4 MiB),
        for t in range(0, T, 4):  # so the max-RSS baseline below is not already high
            logits[g, t: t + 4] = (torch.randn(min(4, T - t), V, generator=gen) * 2).to(torch.bfloat16)
    tokens = torch.randint(0, V, (G, T), generator=gen)
    base = _maxrss_bytes()
    start = time.perf_counter()
    if variant == "old":
        logits_all = logits.float().cpu()  # the old .logits.float().cpu()
        copy = torch.zeros(G, T, V)
        copy[:] = logits_all
        per_token = []
        for row in copy:
            x = row.to(torch.float32)
            per_token.append(torch.logsumexp(x, dim=-1) - x.mean(dim=-1) - math.log(V))
            torch.special.entr(torch.softmax(x, dim=-1)).sum(dim=-1)
            torch.log_softmax(x, -1).gather(-1, tokens[0][:, None])
        out = torch.stack(per_token)
    else:
        from ttrl_bench.adapt.token_scores import token_scores

        out = token_scores(logits, tokens)["token_certainty"]
    seconds = time.perf_counter() - start
    return {"peak_bytes": _maxrss_bytes() - base, "seconds": seconds, "shape": list(out.shape)}


def run(variant: str, G: int, T: int, V: int) -> dict:
    code = f"import json, sys; sys.path[:0] = {sys.path!r}; from bench_token_scores import _child; " \
           f"print(json.dumps(_child({variant!r}, {G}, {T}, {V})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=sys.path[0])
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--vocab", type=int, default=262144)
    ap.add_argument("--old-groups", type=int, nargs="*", default=[1, 2])
    a = ap.parse_args()
    T, V = a.tokens, a.vocab
    rows = []
    for variant, G in [("chunked", a.groups), *(("old", g) for g in a.old_groups)]:
        r = run(variant, G, T, V)
        if "error" in r:
            rows.append([variant, G, T, V, "failed: " + r["error"], "", ""])
            continue
        rows.append([variant, G, T, V, f"{r['peak_bytes'] / 2**20:,.0f}", f"{r['seconds']:.1f}", f"{r['seconds'] / G:.2f}"])
    bf16 = a.groups * T * V * 2
    print(f"input: (G, T, V) bf16 logits = {bf16 / 2**30:.2f} GiB at G={a.groups} (not counted)\n")
    print(tabulate(rows, headers=["variant", "G", "T", "V", "peak above input (MiB)", "seconds", "s / sample"], tablefmt="github"))
    old_formula = 2 * a.groups * T * V * 4
    print(f"\nold at G={a.groups}: two fp32 (G, T, V) tensors = {old_formula / 2**30:.1f} GiB by formula "
          "(+ a (T, V) softmax temporary per sample)")


if __name__ == "__main__":
    main()
