"""Property: on random pairs of realistic answer texts, the Grader's verdict is math-verify's own.

The oracle is math-verify run here, in this process, on the same two texts:
``verify(parse(gold), parse(pred))`` with generous timeouts. The pool mixes the
spellings models and datasets use (delimited and boxed LaTeX, answer phrases,
thousands separators, decimal commas, percent words, sets, intervals, tuples,
equations, several boxes, cut-off boxes); pairs are drawn half within one value
(so that many verdicts are "equal") and half at random.
"""
from __future__ import annotations

import random

import pytest

from ttrl_bench.grading import Grader
from ttrl_bench.grading.canonical import reference_text
from ttrl_bench.types import Completion, Question

PAIRS = 2000
ORACLE_TIMEOUT = 30  # seconds; generous: none of these texts comes near it


def _spellings(rng: random.Random) -> list[list[str]]:
    """Groups of texts; within a group most spellings name the same value."""
    groups = []
    for _ in range(6):
        p, q = rng.randint(1, 9), rng.choice([2, 3, 4, 5, 8])
        groups.append([f"$\\frac{{{p}}}{{{q}}}$", f"\\boxed{{\\dfrac{{{p}}}{{{q}}}}}", f"{p}/{q}",
                       f"The answer is ${p}/{q}$.", f"$${p / q:g}$$", f"Final Answer: The final answer is ${p / q:.6f}$. I hope it is correct.",
                       f"so $x=\\frac{{{p}}}{{{q}}}$"])
    for _ in range(6):
        n = rng.randint(1000, 99999)
        groups.append([f"{n:,}", f"{n}", f"\\boxed{{{n:,}}}", f"\\boxed{{{n // 1000}, {n % 1000:03d}}}", f"\\boxed{{{n // 1000} {n % 1000:03d}}}",
                       f"Final Answer: The total is {n:,}.", f"answer: ${n}$", f"{n}.0"])
    for _ in range(4):
        a, b = rng.randint(1, 9), rng.randint(10, 99)
        groups.append([f"{a},{b}", f"{a}.{b}", f"${a},{b}$", f"\\boxed{{{a},{b}}}", f"\\boxed{{{a}}}, \\boxed{{{b}}}",
                       f"$\\{{{a},{b}\\}}$", f"$({a}, {b})$", f"$[{a}, {b})$", f"\\boxed{{({a},{b}]}}"])
    for _ in range(4):
        k = rng.randint(5, 95)
        groups.append([f"{k} percent", f"{k}%", f"${k}\\%$", f"{k}", f"0.{k:02d}", f"\\boxed{{{k}\\%}}", f"The rate is {k} percent."])
    for _ in range(4):
        a, b = rng.randint(2, 6), rng.choice([2, 3, 5])
        groups.append([f"${a}\\sqrt{{{b}}}$", f"\\boxed{{\\sqrt{{{a * a * b}}}}}", f"{a}\\sqrt{{{b}}}", f"${a}\\pi$",
                       f"\\boxed{{{a}\\pi}}", f"$\\pi {a}$", f"\\boxed{{\\sqrt{{{a * a * b}}}"])
    groups.append(["\\boxed{}", "I could not solve it.", "$x^2+1$", "\\boxed{x^2 + 1}", "$1+x^2$", "\\text{(A)}",
                   "\\boxed{\\text{Monday}}", "Monday", "$\\infty$", "\\boxed{-\\infty}", "$y = 2x+3$", "$2x+3$"])
    return groups


def _pairs(seed: int = 9) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    groups = _spellings(rng)
    pool = [t for g in groups for t in g]
    pairs = []
    for i in range(PAIRS):
        if i % 2 == 0:
            group = rng.choice(groups)
            pairs.append((rng.choice(group), rng.choice(group)))
        else:
            pairs.append((rng.choice(pool), rng.choice(pool)))
    return pairs


def _oracle(pairs: list[tuple[str, str]]) -> tuple[list[bool], dict[str, list]]:
    from math_verify import parse, verify

    parsed = {t: parse(t, parsing_timeout=ORACLE_TIMEOUT) for t in {t for pair in pairs for t in pair}}
    return [verify(parsed[g], parsed[p], timeout_seconds=ORACLE_TIMEOUT) for g, p in pairs], parsed


def _full_path_pairs(pairs, parsed) -> list[int]:
    """Pairs whose reference math-verify reads as written (no ``$`` added) and reads a value from."""
    from ttrl_bench.grading.worker import has_value

    return [i for i, (g, _) in enumerate(pairs) if reference_text(g) == g and has_value(parsed[g])]


@pytest.fixture(scope="module")
def verdicts():
    pairs = _pairs()
    oracle, parsed = _oracle(pairs)
    chosen = _full_path_pairs(pairs, parsed)
    with Grader(timeout_seconds=30.0, budget_seconds=120.0) as grader:  # generous: verdicts, not time
        ours = grader.equivalent_many(pairs, "math")
        items = [(Question(id=str(i), prompt="", reference=pairs[i][0]), [Completion(pairs[i][1], 1, "stop")]) for i in chosen]
        full_path = dict(zip(chosen, grader.grade_many(items, "math")))
    return pairs, ours, full_path, oracle, parsed


def test_equivalent_is_math_verifys_verdict_on_2000_random_pairs(verdicts):
    pairs, ours, _, oracle, _ = verdicts
    assert len(pairs) >= 2000
    assert sum(oracle) >= 400  # the pool produces plenty of both verdicts
    assert sum(not v for v in oracle) >= 400
    disagreements = [(g, p, o, m) for (g, p), o, m in zip(pairs, ours, oracle) if o is not m]
    assert disagreements == []


def test_grading_a_completion_is_math_verifys_verdict_on_the_whole_text(verdicts):
    """grade(): same verdict as math-verify wherever the reference is read as written and holds a value."""
    from ttrl_bench.grading.worker import has_value

    pairs, _, full_path, oracle, parsed = verdicts
    checked = disagreements = 0
    for i, grade in full_path.items():
        if not has_value(parsed[pairs[i][1]]):
            # math-verify kept only a bare string (a cut-off box): no answer in a vote, never correct
            assert grade.correct == [False]
            continue
        checked += 1
        disagreements += grade.correct != [oracle[i]]
    assert checked >= 800 and disagreements == 0
