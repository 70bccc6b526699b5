"""The ``run`` comparison table: base and each method, with gains and their paired standard errors."""
from __future__ import annotations

from tabulate import tabulate

from ttrl_bench.report.stats import paired_difference
from ttrl_bench.measure.records import Record
from ttrl_bench.report.console import pct


def _per_question(rec: Record) -> dict[str, float]:
    return {q.id: q.c / q.n for q in rec.per_question}


def comparison_table(records: dict[str, Record], *, maj_key: str, fmt: str = "github") -> str:
    base = records["base"]
    base_q = _per_question(base)
    ids = sorted(base_q)
    n = base.per_question[0].n if base.per_question else 0
    passn = f"pass@{n}"
    leak_gain = None
    if "leakage" in records:
        leak_gain = records["leakage"].metrics["pass@1"]["mean"] - base.metrics["pass@1"]["mean"]
    rows = []
    warnings: list[str] = []
    backends: set[tuple[str, str]] = set()
    for method, rec in records.items():
        m = rec.metrics
        row = [method, pct(m["pass@1"]["mean"], m["pass@1"]["stderr"]), pct(m[maj_key]["mean"], m[maj_key]["stderr"]),
               pct(m[passn]["mean"], m[passn]["stderr"]) if passn in m else "—"]
        if method == "base":
            row += ["—", "—", "—", "—"]
        else:
            q = _per_question(rec)
            d = paired_difference([base_q[i] for i in ids], [q[i] for i in ids])
            share = "—"
            if leak_gain is not None and leak_gain > 0 and method != "leakage":
                share = f"{100 * d.mean_diff / leak_gain:.0f}%"
            extra = rec.extra
            la = extra.get("label_accuracy_first"), extra.get("label_accuracy_last")
            label = "—" if la[0] is None else f"{100 * la[0]:.0f} → {100 * la[1]:.0f}"
            best = extra.get("best_step")
            best_txt = "—" if best is None else f"step {best}: {100 * extra['best_step_pass@1']:.1f}"
            if extra.get("collapse_warning"):
                # not presented as "best": the criterion rewards a policy collapsed onto one answer
                best_txt = f"suspect (collapse), {best_txt}"
                warnings.append(f"- {method}: {extra['collapse_warning']}")
            if extra.get("probe_backend") and extra.get("final_backend") not in (None, extra["probe_backend"]):
                backends.add((extra["probe_backend"], extra["final_backend"]))
            row += [f"{100 * d.mean_diff:+.1f} ± {100 * d.stderr:.1f}", share, label, best_txt]
        rows.append(row)
    headers = ["method", "pass@1", maj_key, passn, "Δ pass@1 (paired s.e.)", "of leakage gain",
               "label acc. % (first 10 steps → last 10%)", "best step by majority ratio (label-free)"]
    note = (f"{base.model} on {base.task}, {len(ids)} questions; scores in % ± s.e. over questions; "
            "final model in the first columns, the label-free best step in the last.")
    vb = base.extra.get("vote_baseline")
    if vb and f"maj@{vb['votes']}" in base.metrics:  # the vote baseline, when it is not maj_key itself
        v = base.metrics[f"maj@{vb['votes']}"]
        note += f" Vote baseline (no training): base maj@{vb['votes']} = {pct(v['mean'], v['stderr'])}."
    for probe, final in sorted(backends):
        note += (f" The training-curve probes and the best step were sampled with {probe}; base and final"
                 f" models with {final}.")
    text = note + "\n\n" + tabulate(rows, headers=headers, tablefmt=fmt)
    if warnings:
        text += "\n\nLabel-free best step with the collapse signature (majority ratio up, pass@n down):\n" + "\n".join(warnings)
    return text
