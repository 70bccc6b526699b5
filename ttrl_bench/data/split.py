"""The held-out split of ``run --holdout``: which questions adaptation may see, which it never sees.

The split depends only on the question ids, the fraction and the seed: ids are sorted before a
seeded shuffle, so the order the data source yields rows in (hub, local file, builtin) does not
change it, and the adaptation worker (a separate process under ``accelerate launch``) recomputes
exactly the split the run reports on.
"""
from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ttrl_bench.errors import UsageError
from ttrl_bench.types import Question


@dataclass(frozen=True)
class Split:
    fraction: float  # share of the questions held out
    seed: int
    adapted: tuple[str, ...]  # ids adaptation trains on (in-sample), sorted
    held_out: tuple[str, ...]  # ids adaptation never sees (out-of-sample), sorted

    def as_dict(self) -> dict:
        """What a record carries: enough to recompute each part's scores from its per-question scores."""
        return {"fraction": self.fraction, "seed": self.seed, "held_out_ids": list(self.held_out)}


def check_fraction(fraction: float) -> None:
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"--holdout: must be a fraction strictly between 0 and 1, got {fraction}")


def split_ids(ids: Iterable[str], fraction: float, seed: int) -> Split:
    """Hold out round(fraction * Q) of the ids, chosen uniformly at random by ``seed``; both parts non-empty."""
    check_fraction(fraction)
    unique = sorted(set(ids))
    count = round(fraction * len(unique))
    if count < 1 or count > len(unique) - 1:
        raise UsageError(
            f"--holdout {fraction}: {len(unique)} questions leave one part empty "
            f"({count} held out); expected at least one question in each part"
        )
    shuffled = list(unique)
    random.Random(seed).shuffle(shuffled)
    held = frozenset(shuffled[:count])
    return Split(
        fraction=fraction, seed=seed,
        adapted=tuple(i for i in unique if i not in held), held_out=tuple(i for i in unique if i in held),
    )


def adapted_questions(questions: Sequence[Question], split: Split | None) -> list[Question]:
    """The questions adaptation may use, in their original order (all of them without a split)."""
    if split is None:
        return list(questions)
    keep = frozenset(split.adapted)
    return [q for q in questions if q.id in keep]
