"""The episodes corpus: answers made of several noisy attempts, then a final answer that votes them.

A completion for "a+b=" reads ``46;47;46;16>46``: attempts at the sum separated
by the episode marker ``;``, then the final-answer marker ``>`` and the final
answer. Each attempt is the sum with one digit replaced in a share of cases
(``corrupt_rate``), and the final answer is the *per-digit* vote of the attempts
written so far (a tie goes to the digit seen first). So a prefix cut after k
attempts and closed with ``>`` has an answer that is right more often as k
grows: the format gives test-time compute something to buy, which the adder's
3-token answers cannot (their budget curve is flat).

The prefix "...;>" after any number of attempts, with or without a cut-off
partial attempt, is itself in the corpus: forcing an answer is in distribution.
The test split is ``synthetic.test_split("episodes")`` (2-digit + 1-digit, e.g. "47+8=").
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from ttrl_bench.data.synthetic import _corrupt, _operand

EPISODE_MARKER = ";"
ANSWER_MARKER = ">"
EXTRA_CHARS = EPISODE_MARKER + ANSWER_MARKER  # what the episodes tokenizer adds to the adder's characters


@dataclass(frozen=True)
class EpisodeMix:
    """The recipe of the episodes corpus (recorded beside the episodes model)."""

    seed: int = 4321
    max_operand_digits: int = 2  # first operand 1-2 digits, second 1 digit: learnable in minutes on 2 cores
    corrupt_rate: float = 0.5  # share of attempts with one digit replaced
    min_attempts: int = 1
    max_attempts: int = 6
    share_no_attempt: float = 0.05  # ">x": forced at once; x is a single noisy attempt
    share_cut_attempt: float = 0.15  # a partial attempt before ">": the cut of a token budget


def vote_digits(attempts: list[str]) -> str:
    """Per-position vote over same-length attempts; a tie goes to the digit that appeared first."""
    width = max(map(len, attempts))
    return "".join(Counter(a[i] for a in attempts if i < len(a)).most_common(1)[0][0] for i in range(width))


def noisy_attempt(rng: random.Random, answer: str, corrupt_rate: float) -> str:
    return _corrupt(rng, answer) if rng.random() < corrupt_rate else answer


def episode_completion(rng: random.Random, answer: str, mix: EpisodeMix) -> str:
    """One completion in the episodes format for the true ``answer``."""
    u = rng.random()
    if u < mix.share_no_attempt:
        return ANSWER_MARKER + noisy_attempt(rng, answer, mix.corrupt_rate)
    count = rng.randint(mix.min_attempts, mix.max_attempts)
    attempts = [noisy_attempt(rng, answer, mix.corrupt_rate) for _ in range(count)]
    body = EPISODE_MARKER.join(attempts)
    if u < mix.share_no_attempt + mix.share_cut_attempt:
        partial = noisy_attempt(rng, answer, mix.corrupt_rate)[: rng.randint(1, len(answer) - 1) if len(answer) > 1 else 0]
        if partial:
            body += EPISODE_MARKER + partial
    return body + ANSWER_MARKER + vote_digits(attempts)


def episode_examples(rng: random.Random, count: int, mix: EpisodeMix, exclude: set[str]) -> list[tuple[str, str]]:
    """``count`` (prompt, completion) pairs of the episodes corpus; test prompts excluded."""
    out = []
    while len(out) < count:
        a = _operand(rng, rng.randint(1, mix.max_operand_digits))
        b = _operand(rng, 1)
        prompt = f"{a}+{b}="
        if prompt in exclude:
            continue
        out.append((prompt, episode_completion(rng, str(a + b), mix)))
    return out


def split_attempts(completion: str) -> tuple[list[str], str | None]:
    """(complete attempts, final answer or None) of an episodes-format completion."""
    body, marker, final = completion.partition(ANSWER_MARKER)
    attempts = [a for a in body.split(EPISODE_MARKER) if a] if body else []
    return attempts, (final.strip() if marker else None)
