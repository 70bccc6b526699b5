"""Benchmark: grading + majority voting with the Grader against naive math-verify, and hostile answers.

Workload: Q questions x N samples of realistic completion texts (the correct
answer in several spellings, a few wrong answers, fractions / decimals / roots /
multiples of pi / tuples, some completions without an answer), generated from a
fixed seed. math-verify is the oracle everywhere: a completion is read by its
``parse`` on the whole text, verdicts are its ``verify`` (gold first).

- naive: in this process, parse every sample, and verify every answered sample
  against every distinct candidate (the vote) and against the reference (the grade);
- naive, identical strings deduplicated: the same, but each distinct completion
  text is parsed once and compared once per distinct partner (d x d + d verifies);
- Grader: ``Grader.grade_many`` (one worker request per question: each distinct
  text read once, each distinct reading compared with the class founders only,
  the class founders with the reference), then the vote over its classes.

"math-verify calls" = parses + verifies (a naive ``parse`` counts once even when
math-verify tries several matches inside it; the Grader counts every match it
parses). The run checks that classes, per-sample correctness and the votes agree
with the naive ways. Targets against naive-with-dedup: >= 3x fewer calls,
>= 2x less wall time, same verdicts.

Hostile row (``--hostile``): H hostile answers (deep nesting, power towers, 100k-
character numbers, unbalanced braces, ``\\def``, NUL bytes, huge matrices, huge
fractions) spread over questions with a few normal answers each; reports the
total wall time and the slowest question (worker time) against the
per-question budget + one timeout. Targets: every question within budget + one
timeout; the batch within 10 minutes on 2 cores.

    python benchmarks/bench_grading.py                  # 500 x 64 and the hostile row (many minutes)
    python benchmarks/bench_grading.py --questions 50 --hostile 100   # a quick run
"""
from __future__ import annotations

import argparse
import logging
import math
import random
import sys
import time
from collections import Counter

from tabulate import tabulate

from ttrl_bench.grading import Grader
from ttrl_bench.grading.canonical import reference_text
from ttrl_bench.types import Completion, Question, QuestionGrade

CALL_TARGET, TIME_TARGET = 3.0, 2.0  # against naive with identical strings deduplicated


# ---- workload --------------------------------------------------------------------------

def _fraction(rng: random.Random):
    q = rng.choice([2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 16, 20, 25])
    p = rng.choice([k for k in range(1, 3 * q) if math.gcd(k, q) == 1])
    frac = f"\\frac{{{p}}}{{{q}}}"
    spellings = [frac, frac.replace("frac", "dfrac"), f"{p}/{q}", f" {frac} ", f"{frac}."]
    if all(f in (2, 5) for f in _factors(q)):  # a terminating decimal
        spellings.append(f"{p / q:g}")
    wrong = [f"\\frac{{{p + 1}}}{{{q}}}", f"\\frac{{{q}}}{{{p}}}", f"\\frac{{{p}}}{{{q + 1}}}", f"{p}", f"{p / q:.1f}"]
    return spellings, wrong


def _factors(n: int) -> list[int]:
    out, d = [], 2
    while n > 1:
        while n % d == 0:
            out.append(d)
            n //= d
        d += 1
    return out


def _integer(rng: random.Random):
    n = rng.randint(2, 999)
    return [f"{n}", f"{n}.", f"${n}$", f"{n}.0"], [f"{n + d}" for d in (-2, -1, 1, 2, 10)] + [f"{n // 2}"]


def _root(rng: random.Random):
    a, b = rng.randint(2, 6), rng.choice([2, 3, 5, 6, 7])
    spellings = [f"{a}\\sqrt{{{b}}}", f"{a} \\sqrt{b}", f"\\sqrt{{{a * a * b}}}", f"{a}\\sqrt{{{b}}}."]
    wrong = [f"{a}\\sqrt{{{b + 1}}}", f"{a + 1}\\sqrt{{{b}}}", f"\\sqrt{{{a * b}}}", f"{a * b}"]
    wrong.append(f"\\frac{{{a}\\sqrt{{{b}}}}}{{2}}")
    return spellings, wrong


def _pi(rng: random.Random):
    k = rng.randint(2, 12)
    spellings = [f"{k}\\pi", f"{k} \\pi", f"\\pi {k}", f"${k}\\pi$"]
    return spellings, [f"{k + 1}\\pi", f"\\frac{{{k}\\pi}}{{2}}", f"{k}", f"{2 * k}\\pi"]


def _pair(rng: random.Random):
    a, b = rng.randint(-9, 9), rng.randint(1, 9)
    spellings = [f"({a}, {b})", f"\\left( {a}, {b} \\right)", f"({a},{b})"]
    return spellings, [f"({b}, {a})", f"({a}, {b + 1})", f"({a + 1}, {b})"]


FAMILIES = [(_integer, 0.35), (_fraction, 0.3), (_root, 0.15), (_pi, 0.1), (_pair, 0.1)]


def _completion(rng: random.Random, answer: str | None) -> str:
    if answer is None:
        return rng.choice(["I could not finish the computation.", "Let me reconsider the problem from the start"])
    if rng.random() < 0.15:
        return f"Combining the cases, the answer is ${answer}$."
    lead = rng.choice(["Therefore", "So", "Hence", "Putting it together"])
    earlier = f"An intermediate value is \\boxed{{{rng.randint(1, 50)}}}. " if rng.random() < 0.1 else ""
    return f"{earlier}Working through the steps... {lead}, the answer is $\\boxed{{{answer}}}$."


def make_workload(questions: int, samples: int, seed: int) -> list[tuple[Question, list[Completion]]]:
    rng = random.Random(seed)
    items = []
    for i in range(questions):
        family = rng.choices([f for f, _ in FAMILIES], weights=[w for _, w in FAMILIES])[0]
        spellings, wrong = family(rng)
        wrong = rng.sample(wrong, rng.randint(1, len(wrong)))
        wrong_weights = [1 / (r + 1) for r in range(len(wrong))]  # a popular wrong answer, then a tail
        spelling_weights = [1 / (r + 1) ** 0.7 for r in range(len(spellings))]
        p_correct, p_none = rng.uniform(0.15, 0.9), rng.uniform(0.0, 0.1)
        texts = []
        for _ in range(samples):
            roll = rng.random()
            if roll < p_none:
                answer = None
            elif roll < p_none + p_correct * (1 - p_none):
                answer = rng.choices(spellings, weights=spelling_weights)[0]
            else:
                answer = rng.choices(wrong, weights=wrong_weights)[0]
            texts.append(_completion(rng, answer))
        question = Question(id=f"q{i:04d}", prompt="", reference=spellings[0].strip().rstrip("."))
        items.append((question, [Completion(text=t, num_tokens=len(t.split()), finish_reason="stop") for t in texts]))
    return items


# ---- the two ways ----------------------------------------------------------------------

def majority(classes: list[int]) -> int:
    """The largest class; ties go to the class that appears first (-1: no answer at all)."""
    counts = Counter(c for c in classes if c >= 0)
    return max(counts, key=lambda c: (counts[c], -c)) if counts else -1


def run_grader(items, timeout: float, workers: int | None, budget: float):
    with Grader(timeout_seconds=timeout, workers=workers, budget_seconds=budget) as grader:
        grader.start()  # worker start-up is outside the timed region
        before = grader.stats
        started = time.perf_counter()
        grades = grader.grade_many(items, "math")
        votes = [majority(g.classes) for g in grades]
        seconds = time.perf_counter() - started
        after = grader.stats
        calls = after.math_verify_calls - before.math_verify_calls
        return grades, votes, seconds, calls, after.timeouts - before.timeouts, grader.workers


def run_naive(items, timeout: float, dedup: bool):
    """The oracle way, in this process. ``dedup``: each distinct text parsed and compared once."""
    from math_verify import parse, verify

    from ttrl_bench.grading.worker import has_value

    calls, seconds = 0, math.ceil(timeout)  # math-verify's own timeouts take whole seconds
    started = time.perf_counter()
    results = []
    for question, completions in items:
        texts = [c.text for c in completions]
        gold = parse(reference_text(question.reference), parsing_timeout=seconds)
        calls += 1
        if dedup:
            parsed = {t: parse(t, parsing_timeout=seconds) for t in dict.fromkeys(texts)}
            calls += len(parsed)
        else:
            parsed_list = [parse(t, parsing_timeout=seconds) for t in texts]
            calls += len(parsed_list)
            parsed = dict(zip(texts, parsed_list))
        # a text math-verify reads no value from (a bare fallback string) is no answer, as in the Grader
        answered = [t if has_value(parsed[t]) else None for t in texts]
        candidates = list(dict.fromkeys(t for t in answered if t is not None))
        matches: dict[tuple[str, str], bool] = {}
        partners = candidates if dedup else [t for t in answered if t is not None]
        for candidate in candidates:  # the vote: naive compares every sample, repeats included
            for other in partners:
                matches[candidate, other] = verify(parsed[candidate], parsed[other], timeout_seconds=seconds)
                calls += 1
        gold_verdict: dict[str, bool] = {}
        correct = []
        for text in answered:  # the grade
            if text is None:
                correct.append(False)
                continue
            if text not in gold_verdict or not dedup:
                gold_verdict[text] = verify(gold, parsed[text], timeout_seconds=seconds)
                calls += 1
            correct.append(gold_verdict[text])
        # A sample belongs to the first candidate it is equivalent to (its own, if none).
        owner = [
            next((i for i, c in enumerate(candidates) if matches[c, t]), candidates.index(t)) if t else -1
            for t in answered
        ]
        renumber = {o: n for n, o in enumerate(dict.fromkeys(o for o in owner if o >= 0))}
        classes = [renumber[o] if o >= 0 else -1 for o in owner]
        results.append((classes, correct, majority(classes)))
    return results, time.perf_counter() - started, calls


def compare(grades: list[QuestionGrade], votes: list[int], naive) -> dict[str, int]:
    diff = Counter()
    for grade, vote, (classes, correct, naive_vote) in zip(grades, votes, naive):
        diff["classes"] += grade.classes != classes
        diff["per-sample correctness"] += grade.correct != correct
        diff["majority vote"] += vote != naive_vote
        vote_right = vote >= 0 and grade.class_correct[vote]
        naive_right = naive_vote >= 0 and correct[classes.index(naive_vote)]
        diff["majority correct"] += vote_right != naive_right
    return diff


def classify_latency(groups: int, timeout: float, workers: int | None) -> list[list]:
    """Per-call cost of ``classify`` on one 16-sample group, as the TTRL reward calls it."""
    rng = random.Random(1)
    scenarios = {  # name -> (answer type, the group's possible answers for a value k)
        "integer: digits, 3 distinct": ("integer", lambda k: [str(500 + k), str(500 + k), str(501 + k), str(502 + k)]),
        "math: 1 value, 4 spellings": ("math", lambda k: [f"$\\frac{{{k}}}{{7}}$", f"\\boxed{{\\dfrac{{{k}}}{{7}}}}", f"${k}/7$", f"so {k}/7."]),
        "math: 2 values, 3 spellings each": (
            "math",
            lambda k: [f"$\\frac{{{k}}}{{4}}$", f"{k}/4", f"{k / 4:g}", f"$\\frac{{{k + 1}}}{{4}}$", f"{k + 1}/4", f"{(k + 1) / 4:g}"],
        ),
    }
    rows = []
    with Grader(timeout_seconds=timeout, workers=workers) as grader:
        grader.start()
        for name, (answer_type, choices) in scenarios.items():
            seconds, calls_before = [], grader.stats.math_verify_calls
            for k in range(groups):  # a new value per group: no verdict comes from the cache
                answers = [rng.choice(choices(2 * k + 1)) for _ in range(16)]
                started = time.perf_counter()
                grader.classify(answers, answer_type)
                seconds.append(time.perf_counter() - started)
            calls = (grader.stats.math_verify_calls - calls_before) / groups
            rows.append([name, f"{1000 * sorted(seconds)[len(seconds) // 2]:.2f}", f"{calls:.1f}"])
    return rows


def hostile_answers(count: int, seed: int) -> list[str]:
    """Distinct hostile answers, in families, each written as a model would (boxed or in dollars)."""
    rng = random.Random(seed)

    def one(k: int) -> str:
        family = k % 8
        if family == 0:  # deep nesting
            depth = rng.randint(100, 400)
            return "\\boxed{" + "\\frac{1}{" * depth + str(rng.randint(2, 9)) + "}" * depth + "}"
        if family == 1:  # power towers
            return "\\boxed{" + "^{".join(str(rng.randint(5, 99)) for _ in range(rng.randint(4, 6))) + "}" * 5 + "}"
        if family == 2:  # 100k-character numbers
            return "\\boxed{" + "".join(rng.choice("0123456789") for _ in range(100_000)) + "}"
        if family == 3:  # unbalanced braces
            return "\\boxed{" + "{" * rng.randint(1000, 5000) + str(rng.randint(1, 99))
        if family == 4:  # macro definitions
            return f"\\def\\x{{\\x\\x}}\\def\\y{{{rng.randint(1, 99)}}}\\boxed{{\\x + \\y}}"
        if family == 5:  # NUL bytes
            return f"\\boxed{{{rng.randint(1, 99)}\x00{rng.randint(1, 99)}\x00}}"
        if family == 6:  # huge matrices
            n = rng.randint(40, 80)
            rows = "\\\\".join("&".join(str(rng.randint(0, 9)) for _ in range(n)) for _ in range(n))
            return f"$\\begin{{pmatrix}}{rows}\\end{{pmatrix}}$"
        digits = rng.randint(3000, 8000)  # huge fractions
        return "\\boxed{\\frac{" + "9" * digits + "}{" + "7" * (digits - rng.randint(1, 50)) + "}}"

    return [one(k) for k in range(count)]


def run_hostile(count: int, per_question: int, normal: int, timeout: float, budget: float, workers: int | None, seed: int):
    hostile = hostile_answers(count, seed)
    rng = random.Random(seed)
    items = []
    for q in range(math.ceil(count / per_question)):
        value = rng.randint(2, 99)
        texts = hostile[q * per_question : (q + 1) * per_question] + [f"So the answer is $\\boxed{{{value}}}$."] * normal
        rng.shuffle(texts)
        completions = [Completion(text=t, num_tokens=1, finish_reason="stop") for t in texts]
        items.append((Question(id=f"h{q:03d}", prompt="", reference=str(value)), completions))
    slowest = 0.0
    with Grader(timeout_seconds=timeout, workers=workers, budget_seconds=budget) as grader:
        grader.start()
        started = time.perf_counter()
        grades = grader.grade_many(items, "math")
        seconds = time.perf_counter() - started
        stats = grader.stats
        slowest = stats.slowest_question_seconds
    right = sum(g.correct.count(True) == normal for g in grades)
    return {
        "questions": len(items), "answers": count, "seconds": seconds, "slowest": slowest, "timeouts": stats.timeouts,
        "skipped": stats.skipped, "kills": stats.worker_kills, "normal answers graded right": f"{right}/{len(items)}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=5.0, help="per-operation math-verify timeout (s)")
    parser.add_argument("--budget", type=float, default=30.0, help="per-question grading budget (s)")
    parser.add_argument("--workers", type=int, default=None, help="Grader worker processes (default: one per core)")
    parser.add_argument("--groups", type=int, default=30, help="16-sample groups per classify-latency scenario")
    parser.add_argument("--hostile", type=int, default=1000, help="hostile answers for the hostile row (0: skip)")
    parser.add_argument("--hostile-per-question", type=int, default=10)
    parser.add_argument("--hostile-timeout", type=float, default=1.0, help="per-operation timeout of the hostile row (s)")
    parser.add_argument("--skip-naive", action="store_true", help="only the hostile row")
    args = parser.parse_args(argv)
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    checks: dict[str, bool] = {}

    if not args.skip_naive:
        items = make_workload(args.questions, args.samples, args.seed)
        distinct = sum(len({c.text for c in cs}) for _, cs in items) / len(items)
        print(f"workload: {args.questions} questions x {args.samples} samples, {distinct:.1f} distinct texts per question")
        grades, votes, grader_s, grader_calls, grader_timeouts, workers = run_grader(items, args.timeout, args.workers, args.budget)
        print(f"grader done in {grader_s:.1f} s; running the naive ways...", flush=True)
        dedup, dedup_s, dedup_calls = run_naive(items, args.timeout, dedup=True)
        naive, naive_s, naive_calls = run_naive(items, args.timeout, dedup=False)
        rows = [
            ["naive (in-process, 1 core)", naive_calls, f"{naive_s:.1f}", f"{naive_calls / max(grader_calls, 1):.1f}x", f"{naive_s / grader_s:.1f}x"],
            ["naive, identical strings deduplicated", dedup_calls, f"{dedup_s:.1f}",
             f"{dedup_calls / max(grader_calls, 1):.1f}x", f"{dedup_s / grader_s:.1f}x"],
            [f"Grader ({workers} workers)", grader_calls, f"{grader_s:.1f}", "", ""],
        ]
        print(tabulate(rows, headers=["way", "math-verify calls", "seconds", "Grader: fewer calls", "Grader: less time"]))
        print(f"Grader timeouts: {grader_timeouts}")
        diff = compare(grades, votes, dedup)
        diff_naive = compare(grades, votes, naive)
        print(tabulate([[k, v, diff_naive[k]] for k, v in diff.items()],
                       headers=["questions that disagree on", "vs naive-dedup", "vs naive"]))
        checks[f">= {CALL_TARGET:g}x fewer math-verify calls than naive-dedup"] = dedup_calls >= CALL_TARGET * grader_calls
        checks[f">= {TIME_TARGET:g}x less wall time than naive-dedup"] = dedup_s >= TIME_TARGET * grader_s
        checks["same classes, correctness and votes"] = not any(diff.values()) and not any(diff_naive.values())
        print()
        rows = classify_latency(args.groups, args.timeout, args.workers)
        print(tabulate(rows, headers=["classify() of one 16-sample group", "median ms", "math-verify calls"]))

    if args.hostile:
        print(f"\nhostile row: {args.hostile} hostile answers, {args.hostile_per_question} per question "
              f"(+4 normal answers each); timeout {args.hostile_timeout:g} s, budget {args.budget:g} s", flush=True)
        row = run_hostile(args.hostile, args.hostile_per_question, 4, args.hostile_timeout, args.budget, args.workers, args.seed)
        print(tabulate([list(row.values())], headers=list(row.keys()), floatfmt=".1f"))
        checks["hostile: slowest question within budget + one timeout"] = row["slowest"] <= args.budget + args.hostile_timeout
        checks["hostile: batch within 10 minutes"] = row["seconds"] <= 600

    print()
    print(tabulate([[k, "met" if ok else "MISSED"] for k, ok in checks.items()], headers=["target", ""]))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
