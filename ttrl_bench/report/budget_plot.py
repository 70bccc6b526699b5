"""The budget figure and console tables: accuracy vs tokens (budget-forced, with the parallel
comparators and the oracle) and cumulative regret vs tokens, for one or several models."""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from tabulate import tabulate

from ttrl_bench.adapt.methods import colour, display_name
from ttrl_bench.report.console import pct
from ttrl_bench.report.plots import _literal, _save


def plot_budget(curves_by_name: dict[str, dict], path: Path, *, title: str) -> Path:
    """Left: J(b) ± s.e. (solid), parallel maj@k (dashed) per model, oracle at 1. Right: cumulative regret."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    fig.suptitle(_literal(title))
    acc_ax, reg_ax = fig.subplots(1, 2)
    for name, c in curves_by_name.items():
        grid = c["grid"]
        col = colour(name) if name else "#1f77b4"
        label = display_name(name) if name else "budget-forced"
        mean = [100 * p["mean"] for p in c["accuracy"]]
        err = [100 * p["stderr"] for p in c["accuracy"]]
        acc_ax.errorbar(grid, mean, yerr=err, color=col, marker="o", markersize=3, capsize=2, label=f"{label}: forced")
        acc_ax.plot(grid, [100 * p["mean"] for p in c["parallel_maj"]], color=col, linestyle="--",
                    label=f"{label}: parallel maj@k")
        reg_ax.errorbar(grid[1:], [100 * p["mean"] for p in c["regret"]], yerr=[100 * p["stderr"] for p in c["regret"]],
                        color=col, marker="o", markersize=3, capsize=2, label=f"{label}: vs parallel maj@k")
        reg_ax.plot(grid[1:], [100 * p["mean"] for p in c["regret_oracle"]], color=col, linestyle=":",
                    label=f"{label}: vs oracle")
    acc_ax.axhline(100, color="#000000", linewidth=0.8, linestyle=":", label="oracle")
    for ax in (acc_ax, reg_ax):
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)
        ax.set_xlabel("tokens (budget)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", loc="best")
    acc_ax.set_ylabel("accuracy (%)")
    reg_ax.set_ylabel("cumulative regret (points)")
    return _save(fig, path)


def curve_table(curves: dict) -> str:
    """One row per budget: tokens used, J, the parallel comparators and the regrets."""
    rows = [(0, "0.0", pct(curves["accuracy"][0]["mean"], curves["accuracy"][0]["stderr"]), "—", "—", "—", "—", "—")]
    for i, b in enumerate(curves["grid"][1:], start=1):
        a, mj, ps = curves["accuracy"][i], curves["parallel_maj"][i], curves["parallel_pass"][i]
        r, ro = curves["regret"][i - 1], curves["regret_oracle"][i - 1]
        rows.append((b, f"{curves['tokens_used'][i]:.1f}", pct(a["mean"], a["stderr"]), f"{curves['parallel_k'][i]:.2f}",
                     pct(mj["mean"], mj["stderr"]), pct(ps["mean"], ps["stderr"]), pct(r["mean"], r["stderr"]),
                     pct(ro["mean"], ro["stderr"])))
    t90 = curves["tokens_to_90"]
    head = (f"{curves['num_questions']} questions x {curves['samples_per_question']} samples cut; "
            f"tokens to 90% of final accuracy: {t90['mean']:.0f} ± {t90['stderr']:.0f}")
    table = tabulate(rows, headers=["budget", "tokens used", "forced acc. %", "parallel k", "parallel maj@k %",
                                    "parallel pass@k %", "regret vs maj@k", "regret vs oracle"])
    ep = curves["episodes"]
    progress = [None, *ep["progress"]]  # no progress before the first episode
    ep_rows = [(k, pct(a["mean"], a["stderr"]), "—" if p is None else pct(p["mean"], p["stderr"]))
               for k, (a, p) in enumerate(zip(ep["accuracy"], progress))]
    ep_table = tabulate(ep_rows, headers=["after episode", "forced acc. %", "progress (points)"])
    return f"{head}\n\n{table}\n\nmean episodes per sample: {ep['mean_episodes']:.2f}\n{ep_table}"


def comparison_table(results: dict[str, dict], paired: dict[str, dict]) -> str:
    """One row per model of a run: final forced accuracy, regrets, tokens to 90%, paired differences."""
    rows = []
    for name, c in results.items():
        d = paired.get(name, {})
        rows.append((display_name(name), pct(c["accuracy"][-1]["mean"], c["accuracy"][-1]["stderr"]),
                     pct(c["regret"][-1]["mean"], c["regret"][-1]["stderr"]),
                     pct(c["regret_oracle"][-1]["mean"], c["regret_oracle"][-1]["stderr"]),
                     f"{c['tokens_to_90']['mean']:.0f} ± {c['tokens_to_90']['stderr']:.0f}",
                     d.get("regret_vs_base", "—"), d.get("oracle_vs_base", "—"), d.get("regret_vs_ttrl", "—")))
    return tabulate(rows, headers=["method", "forced acc. at max %", "regret vs maj@k", "regret vs oracle",
                                   "tokens to 90%", "Δ regret vs base (paired)", "Δ oracle regret vs base",
                                   "Δ regret vs TTRL (paired)"])
