"""Writes arith_steps.jsonl: one-step arithmetic word problems as 4-shot prompts whose worked answers
are short sentences ("episodes"), for ``ttrl-bench budget`` on a small base model (the command is in arith_steps.yaml).

    python examples/budget_real_model/make_data.py [--questions 8] [--out examples/budget_real_model/arith_steps.jsonl]
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

NAMES = ["Tom", "Ana", "Li", "Sam", "Mia", "Omar", "Zoe", "Ben"]
THINGS = ["apples", "pens", "coins", "books", "cards", "shells"]


def problem(rng: random.Random) -> tuple[str, str, int]:
    """(question, worked answer in sentences, answer)."""
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    kind = rng.choice(["more", "fewer", "times"])
    if kind == "more":
        q = f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?"
        return q, f"{name} starts with {a}. {name} gets {b} more. {a} + {b} = {a + b}.", a + b
    if kind == "fewer":
        a += b
        q = f"{name} has {a} {thing} and gives away {b}. How many {thing} does {name} have now?"
        return q, f"{name} starts with {a}. {name} gives away {b}. {a} - {b} = {a - b}.", a - b
    q = f"{name} has {a} bags with {b} {thing} in each bag. How many {thing} does {name} have?"
    return q, f"There are {a} bags. Each bag has {b}. {a} * {b} = {a * b}.", a * b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--shots", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("arith_steps.jsonl"))
    args = ap.parse_args()
    rng = random.Random(0)
    shots = "".join(f"Q: {q}\nA: {w} The answer is {a}.\n\n" for q, w, a in (problem(rng) for _ in range(args.shots)))
    rows = []
    for i in range(args.questions):
        q, _, a = problem(rng)
        rows.append({"id": f"q{i:03d}", "question": f"{shots}Q: {q}\nA:", "answer": str(a)})
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
