"""``run``'s generalization tables: one row per (adapted on, measured on, method), and the held-out split.

Every gain is a paired difference over the questions of the task (or part) it is measured on,
against the base model on the very same question ids; its standard error is the sample std of
the per-question differences / sqrt(#questions). The vote baseline (base maj@votes, from the base
record's ``extra["vote_baseline"]``) answers "does adaptation beat voting more without training".
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from tabulate import tabulate

from ttrl_bench.errors import UsageError
from ttrl_bench.measure.records import Record
from ttrl_bench.report.console import pct
from ttrl_bench.report.stats import per_question_metric


def vote_scores(base: Record) -> tuple[int, dict[str, float]] | None:
    """(votes, per-question maj@votes score) of a base record, or None for a record without it."""
    vb = base.extra.get("vote_baseline")
    if not vb:
        return None
    return int(vb["votes"]), {qid: 1.0 if ok else 0.0 for qid, ok in vb["maj_correct"].items()}


def paired_gain(rec_scores: dict[str, float], base_scores: dict[str, float], ids: Iterable[str] | None = None,
                where: str = "") -> tuple[float, float, int]:
    """(mean of rec - base, its paired standard error, #questions) over ``ids`` (default: all of rec's)."""
    ids = sorted(rec_scores if ids is None else ids)
    missing = [i for i in ids if i not in base_scores or i not in rec_scores]
    if missing or not ids:
        raise UsageError(f"{where}: question ids do not pair with the base model's (e.g. {missing[:1]}); "
                         "expected the same questions")
    diffs = [rec_scores[i] - base_scores[i] for i in ids]
    mean = sum(diffs) / len(diffs)
    if len(diffs) < 2:
        return mean, 0.0, len(diffs)
    var = sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)
    return mean, math.sqrt(var / len(diffs)), len(diffs)


def mean_se(scores: dict[str, float], ids: Sequence[str]) -> tuple[float, float]:
    vals = [scores[i] for i in ids]
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1) / len(vals))


def _pts(mean: float, se: float, sign: bool = True) -> str:
    return f"{100 * mean:+.1f} ± {100 * se:.1f}" if sign else f"{100 * mean:.1f} ± {100 * se:.1f}"


def generalization_table(records: Sequence[Record], *, maj_key: str, fmt: str = "github") -> str:
    """Rows (adapted on, measured on, method) of one run: the base model once per measured task."""
    bases = {r.task: r for r in records if r.method == "base"}
    rows = []
    votes_label = None
    for rec in records:
        base = bases.get(rec.task)
        if base is None:
            raise UsageError(f"records: no base measurement on {rec.task!r} to pair {rec.method!r} with")
        where = f"{rec.method} measured on {rec.task}"
        p1, b1 = per_question_metric(rec, "pass@1"), per_question_metric(base, "pass@1")
        vs = vote_scores(base)
        vote_cell = gap_cell = "—"
        if vs is not None:
            votes, vmaj = vs
            votes_label = f"maj@{votes}"
            vote_cell = _pts(*mean_se(vmaj, sorted(vmaj)), sign=False)
            if rec.method != "base":
                gap = paired_gain(p1, vmaj, where=where)
                gap_cell = _pts(gap[0], gap[1])
        gain = "—" if rec.method == "base" else _pts(*paired_gain(p1, b1, where=where)[:2])
        m = rec.metrics
        rows.append([
            "—" if rec.method == "base" else (rec.adapted_on or rec.task), rec.task, rec.method,
            pct(m["pass@1"]["mean"], m["pass@1"]["stderr"]),
            pct(m[maj_key]["mean"], m[maj_key]["stderr"]) if maj_key in m else "—",
            vote_cell, gain, gap_cell,
        ])
    order = {"base": 0}
    rows.sort(key=lambda r: (r[1], r[0] != "—", r[0], order.get(r[2], 1), r[2]))
    vl = votes_label or "maj@votes"
    headers = ["adapted on", "measured on", "method", "pass@1", maj_key, f"base {vl} (vote baseline)",
               "Δ pass@1 vs base (paired s.e.)", f"pass@1 − base {vl} (paired s.e.)"]
    note = ("Scores in % ± s.e. over questions; Δ = paired difference against the base model on the same "
            f"question ids. The vote baseline is the base model's majority vote of {vl.split('@')[1]} samples "
            "(no training).")
    return note + "\n\n" + tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True)


def carry_over_sentence(method: str, gain_in: tuple[float, float], gain_out: tuple[float, float]) -> str:
    """One sentence: does the in-sample gain carry over to the held-out questions?"""
    (gi, si), (go, so) = gain_in, gain_out
    diff, se = go - gi, math.sqrt(si**2 + so**2)  # disjoint question sets: independent estimates
    numbers = (f"{method}: in-sample gain {100 * gi:+.1f} ± {100 * si:.1f}, held-out gain {100 * go:+.1f} ± "
               f"{100 * so:.1f}, difference (held-out − in-sample) {100 * diff:+.1f} ± {100 * se:.1f} points")
    if abs(gi) <= 2 * si:
        verdict = ("there is no significant in-sample gain to carry over (the in-sample gain is within 2 s.e. of 0); "
                   + ("held-out questions gain significantly" if abs(go) > 2 * so else "nor a held-out one"))
    elif abs(diff) <= 2 * se:
        verdict = "the gain carries over to unseen questions (the two gains differ by less than 2 s.e.)"
    elif diff < 0 and go > 2 * so:
        verdict = "the gain carries over only in part (smaller on unseen questions by more than 2 s.e.)"
    elif diff < 0:
        verdict = "the gain does not carry over to unseen questions"
    else:
        verdict = "the held-out questions gain more than the adapted ones (by more than 2 s.e.)"
    return f"{numbers}: {verdict}."


def holdout_table(records: Sequence[Record], held_out: Sequence[str], *, maj_key: str, fmt: str = "github") -> str:
    """Per method and part (adapted / held out): pass@1, maj@N and the gain over base with paired s.e."""
    base = next((r for r in records if r.method == "base"), None)
    if base is None:
        raise UsageError("holdout report: no base record")
    held = sorted(held_out)
    adapted = sorted(set(per_question_metric(base, "pass@1")) - set(held))
    parts = [("adapted (in-sample)", adapted), ("held out", held)]
    b1, bmaj = per_question_metric(base, "pass@1"), per_question_metric(base, maj_key)
    vs = vote_scores(base)
    rows, sentences = [], []
    for rec in records:
        p1, pmaj = per_question_metric(rec, "pass@1"), per_question_metric(rec, maj_key)
        gains = []
        for label, ids in parts:
            row = [rec.method, label, len(ids), _pts(*mean_se(p1, ids), sign=False), _pts(*mean_se(pmaj, ids), sign=False)]
            row.append(_pts(*mean_se(vs[1], ids), sign=False) if vs else "—")
            if rec.method == "base":
                row += ["—", "—"]
            else:
                g = paired_gain(p1, b1, ids, where=f"{rec.method} ({label})")
                gains.append(g[:2])
                row += [_pts(g[0], g[1]), _pts(*paired_gain(pmaj, bmaj, ids, where=rec.method)[:2])]
            rows.append(row)
        if rec.method != "base":
            sentences.append(carry_over_sentence(rec.method, gains[0], gains[1]))
    vl = f"maj@{vs[0]}" if vs else "maj@votes"
    headers = ["method", "part", "questions", "pass@1", maj_key, f"base {vl}", "Δ pass@1 vs base (paired s.e.)",
               f"Δ {maj_key} vs base (paired s.e.)"]
    note = (f"Held-out split: {len(held)} of {len(held) + len(adapted)} questions never reached adaptation "
            "(neither the trainer's dataset nor the reward). Scores in % ± s.e. over each part's questions.")
    return "\n\n".join([note, tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True), *sentences])
