"""False-alarm rate of `ttrl-bench check` at alpha 0.05 when there is no true difference.

Pairs of runs are simulated as in the README: per-question accuracy p ~ U(0, 1), each run
draws 16 samples per question (score = correct / 16), the same p for both runs. A pair is a
false alarm when the one-sided test calls the second run worse (p_worse < alpha). Both tests are
measured on the same simulated pairs: the sign-flip permutation test `check` uses now, and the
paired percentile bootstrap it used before.

    python benchmarks/bench_gate_calibration.py [--pairs 2000] [--resamples 2000]
"""
from __future__ import annotations

import argparse
import math

import numpy as np
from tabulate import tabulate

from ttrl_bench.report.stats import _bootstrap_means, sign_flip_p_values


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--sizes", default="10,30,100,500")
    args = ap.parse_args()
    rng = np.random.default_rng(2026)
    rows = []
    for q in (int(x) for x in args.sizes.split(",")):
        flip = boot = 0
        for _ in range(args.pairs):
            p = rng.random(q)
            a, b = rng.binomial(16, p) / 16, rng.binomial(16, p) / 16
            seed = int(rng.integers(1 << 30))
            d = b - a
            flip += sign_flip_p_values(d, args.resamples, seed)[0] < args.alpha
            means = _bootstrap_means(d, args.resamples, seed)
            boot += (1 + np.count_nonzero(means >= 0.0)) / (args.resamples + 1) < args.alpha
        se = lambda k: 100 * math.sqrt(k / args.pairs * (1 - k / args.pairs) / args.pairs)  # noqa: E731
        rows.append([q, f"{100 * flip / args.pairs:.1f} ± {se(flip):.1f}", f"{100 * boot / args.pairs:.1f} ± {se(boot):.1f}"])
    print(f"false alarms at alpha {args.alpha} ({args.pairs} null pairs per size, {args.resamples} resamples; % ± s.e.)")
    print(tabulate(rows, ["questions", "sign-flip permutation (check now)", "percentile bootstrap (before)"],
                   tablefmt="github"))


if __name__ == "__main__":
    main()
