"""Synthetic addition tasks: the embedded default's data, generated from fixed seeds.

A question is "a+b=" and its answer the decimal sum. Splits:
- ``near``: both operands have 3 digits, the bulk of the pretraining distribution,
  where the corpus's errors are random: the model's answers are noisy but their
  mode is right, so the majority vote is a reliable label (TTRL's good regime);
- ``shift``: both operands have 4 digits and the sum has at least one carry: a
  small share of pretraining, whose corpus in the second phase carries a
  *systematic* error (the first carry dropped) almost as often as the right
  answer, so the model's majority answer is often a consistent wrong one (the
  regime where the vote locks in a popular mistake and TTRL falls short of
  leakage RL);
- ``episodes``: a 2-digit and a 1-digit operand ("47+8="), the task answered in episodes by the
  second embedded model (its corpus: ``ttrl_bench.data.episodes``; not in the adder's held-out set);
- pretraining corpus (``pretrain_examples``): 1-3 digit operands plus a share of
  4-digit ones, random errors (phase 1), then the same with the misconception
  (phase 2, ``MISCONCEPTION``). Test questions are excluded from it.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

TEST_SEED = 20250422  # TTRL's arXiv month; any fixed value would do
TEST_SIZE = 100
SPLIT_DIGITS = {"near": 3, "shift": 4, "episodes": 2}  # "episodes": see ttrl_bench.data.episodes
SECOND_OPERAND_DIGITS = {"episodes": 1}  # splits whose second operand is shorter ("47+8=")
ADDER_SPLITS = ("near", "shift")  # the splits the shipped adder model's recipe holds out


@dataclass(frozen=True)
class PretrainMix:
    """The recipe of the pretraining corpus (recorded beside the shipped model)."""

    seed: int = 1234
    share_four_digit: float = 0.10
    corrupt_rate: float = 0.4  # 1-3 digits: share of examples with one answer digit replaced
    four_digit_dropped_carry: float = 0.0  # 4 digits: share with the first carry dropped (if any)
    four_digit_corrupt_rate: float = 0.4  # 4 digits: share with one random digit replaced


# Phase 2 of the recipe: the same mixture, but the 4-digit answers now carry a systematic error
# almost as often as the right answer (a "misconception" the model picks up).
MISCONCEPTION = PretrainMix(four_digit_dropped_carry=0.50, four_digit_corrupt_rate=0.10)


def _operand(rng: random.Random, digits: int) -> int:
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(low, 10**digits - 1)


def dropped_carry_sum(a: int, b: int) -> int | None:
    """``a + b`` computed with its lowest carry forgotten; None if the sum has no carry."""
    place, carry, total, dropped = 1, 0, 0, False
    while a or b or carry:
        s = a % 10 + b % 10 + carry
        carry = s // 10
        if carry and not dropped:
            carry, dropped = 0, True
        total += (s % 10) * place
        place *= 10
        a //= 10
        b //= 10
    return total if dropped else None


def test_split(name: str, size: int = TEST_SIZE, seed: int = TEST_SEED) -> list[dict]:
    """Rows ``{"id", "question", "answer", "digits"}`` of a test split, deterministic."""
    if name not in SPLIT_DIGITS:
        raise ValueError(f"unknown synthetic split {name!r}; expected one of {sorted(SPLIT_DIGITS)}")
    digits = SPLIT_DIGITS[name]
    rng = random.Random(f"{seed}-{name}")
    seen: set[tuple[int, int]] = set()
    rows = []
    while len(rows) < size:
        a, b = _operand(rng, digits), _operand(rng, SECOND_OPERAND_DIGITS.get(name, digits))
        if (a, b) in seen or (name == "shift" and dropped_carry_sum(a, b) is None):
            continue
        seen.add((a, b))
        rows.append({"id": f"{name}-{len(rows):03d}", "question": f"{a}+{b}=", "answer": str(a + b), "digits": digits})
    # (``digits`` is the first operand's length; for "episodes" the second has one digit)
    return rows


def held_out_pairs(splits: tuple[str, ...] = ADDER_SPLITS) -> set[str]:
    """Test prompts a pretraining corpus must not contain (default: the adder recipe's, unchanged)."""
    return {row["question"] for name in splits for row in test_split(name)}


def _corrupt(rng: random.Random, answer: str) -> str:
    pos = rng.randrange(len(answer))
    wrong = rng.choice([d for d in "0123456789" if d != answer[pos]])
    return answer[:pos] + wrong + answer[pos + 1 :]


def pretrain_examples(rng: random.Random, count: int, mix: PretrainMix, exclude: set[str]) -> list[tuple[str, str]]:
    """``count`` (prompt, completion) pairs drawn from the pretraining mixture."""
    out = []
    while len(out) < count:
        four = rng.random() < mix.share_four_digit
        da, db = (4, 4) if four else (rng.randint(1, 3), rng.randint(1, 3))
        a, b = _operand(rng, da), _operand(rng, db)
        prompt = f"{a}+{b}="
        if prompt in exclude:
            continue
        answer = str(a + b)
        u = rng.random()
        if four:
            wrong = dropped_carry_sum(a, b)
            if u < mix.four_digit_dropped_carry and wrong is not None:
                answer = str(wrong)
            elif mix.four_digit_dropped_carry <= u < mix.four_digit_dropped_carry + mix.four_digit_corrupt_rate:
                answer = _corrupt(rng, answer)
        elif u < mix.corrupt_rate:
            answer = _corrupt(rng, answer)
        out.append((prompt, answer))
    return out
