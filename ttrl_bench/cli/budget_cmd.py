"""``ttrl-bench budget``: budget-forced accuracy curves and cumulative regret (MRT)."""
from __future__ import annotations

from pathlib import Path


def add_budget_parser(sub, add_eval_flags) -> None:
    p = sub.add_parser(
        "budget", help="accuracy vs tokens: force answers after token budgets / episodes; cumulative regret",
        description="Cut each eval sample at token budgets and episode boundaries, append the task's forced-answer "
        "suffix, sample m short answers (the same model or --prover) and report accuracy vs tokens, the parallel "
        "comparator at equal tokens (maj@k / pass@k of k independent samples), cumulative regret (vs that "
        "comparator and vs the oracle) and the tokens needed to reach 90%% of the final accuracy. The eval run "
        "directory is made or resumed first; the forced answers are stored and resumed too.",
    )
    add_eval_flags(p)
    g = p.add_argument_group("budget")
    g.add_argument("--budgets", default=None, help="comma-separated token budgets (default: powers of two up to the "
                   "generation limit, and the limit)")
    g.add_argument("--forced-answers", type=int, default=4, help="m: forced answers sampled per prefix (default 4)")
    g.add_argument("--prover", default=None, help="model directory that answers after a prefix (default: the model itself)")
    g.add_argument("--budget-samples", type=int, default=None, help="eval samples per question to cut (default: all)")
    g.add_argument("--run", type=Path, default=None, help="a `ttrl-bench run` directory: do every measured model in it "
                   "(base and each adapted model, pass the eval flags the run used) and compare them")
    p.set_defaults(func=cmd_budget)


def cmd_budget(args) -> int:
    from ttrl_bench.cli.eval_flags import eval_config_from_args, set_threads
    from ttrl_bench.pipeline.budget import BudgetConfig, parse_budgets, run_budget, run_budget_over_run
    from ttrl_bench.report.budget_plot import comparison_table, curve_table, plot_budget

    cfg = eval_config_from_args(args)
    set_threads(args)
    bcfg = BudgetConfig(budgets=parse_budgets(args.budgets), forced_answers=args.forced_answers, prover=args.prover,
                        samples=args.budget_samples)
    if args.run is None:
        out, curves = run_budget(cfg, bcfg, args.out, None if args.no_leaderboard else args.leaderboard)
        print(curve_table(curves))
        print(f"\nbudget directory: {out}  (figure: {out / 'budget.png'})")
        return 0
    results = run_budget_over_run(cfg, bcfg, args.run, None if args.no_leaderboard else args.leaderboard)
    for name, curves in results.items():
        print(f"\n== {name} ==\n{curve_table(curves)}")
    paired = paired_regrets(results)
    table = comparison_table(results, paired)
    print(f"\n{table}")
    plot = args.run / "budget.png"
    plot_budget(results, plot, title=f"{args.run.name}: accuracy vs tokens")
    (args.run / "budget_report.md").write_text(f"# Test-time compute: {args.run.name}\n\n{table}\n")
    print(f"\nfigure: {plot}; report: {args.run / 'budget_report.md'}")
    return 0


def paired_regrets(results: dict[str, dict]) -> dict[str, dict[str, str]]:
    """Paired differences (method - reference, points ± s.e. over questions) of the per-question regrets."""
    from ttrl_bench.report.stats import paired_difference

    def per_q(c, key):
        return dict(zip(c["per_question"]["ids"], c["per_question"][key]))

    def diff(ref, other, key):
        a, b = per_q(ref, key), per_q(other, key)
        ids = [i for i in a if i in b]
        d = paired_difference([a[i] for i in ids], [b[i] for i in ids], n_boot=2000)
        return f"{100 * d.mean_diff:+.1f} ± {100 * d.stderr:.1f}"

    out: dict[str, dict[str, str]] = {}
    for name, c in results.items():
        row = {}
        if name != "base" and "base" in results:
            row["regret_vs_base"] = diff(results["base"], c, "regret")
            row["oracle_vs_base"] = diff(results["base"], c, "regret_oracle")
        if name not in ("base", "ttrl") and "ttrl" in results:
            row["regret_vs_ttrl"] = diff(results["ttrl"], c, "regret")
        out[name] = row
    return out
