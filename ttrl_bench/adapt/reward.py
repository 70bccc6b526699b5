"""The TRL reward function: one estimator from ``ttrl_bench.adapt.methods`` applied group by group.

TRL calls it with the completions of a generation batch, each question's group of
G completions consecutive (``config.check_group_layout`` makes sure a group is never
split across processes; a runtime check here catches any layout that slips past).
True labels reach it as the ``reference`` column: they feed the diagnostics (label
accuracy, reward accuracy) and the ``leakage`` method only.
"""
from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Callable, Sequence

import torch

from ttrl_bench.adapt import estimators as E
from ttrl_bench.adapt.methods import TOKEN_NEEDS, get_method
from ttrl_bench.grading import Grader, extract_answer
from ttrl_bench.measure.metrics import majority_vote
from ttrl_bench.types import AnswerType

# (the prompts of all groups of a generation batch, count) -> count completion texts per prompt,
# in ONE call, so the extra votes of a step are one batched rollout of TRL's own sampler.
ExtraSampler = Callable[[list, int], list[list[str]]]
# (prompts, completion ids, wanted token scores) -> ({score: (G, T)}, mask (G, T))
Scorer = Callable[[Sequence, Sequence[Sequence[int]], tuple[str, ...]], tuple[dict[str, torch.Tensor], torch.Tensor]]


def derived_seed(*parts: object) -> int:
    """A 63-bit seed from (run seed, rank, ...): distinct streams per process, reproducible per run.

    Not ``hash()``: Python salts it per process, and ranks must get different but stable seeds.
    """
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class GroupReward:
    """Callable TRL reward function for one method; keeps per-step diagnostics."""

    def __init__(self, method: str, *, answer_type: AnswerType, grader: Grader, group_size: int, votes: int, seed: int,
                 rank: int = 0):
        self.method = method
        self.spec = get_method(method, "method")
        self.answer_type = answer_type
        self.grader = grader
        self.group_size = group_size
        self.votes = votes
        # One stream per process: the same seed on every rank would give every rank's groups
        # the same "random" rewards (a correlated control).
        self.rng = random.Random(derived_seed("random-control", seed, rank))
        self.extra_sampler: ExtraSampler | None = None  # set by bind() when votes > samples
        self.scorer: Scorer | None = None
        self.__name__ = f"{method}_reward"  # TRL names the reward column after it

    def __call__(self, prompts, completions, completion_ids=None, reference=None, log_metric=None, **_) -> list[float]:
        G = self.group_size
        if len(completions) % G:
            raise RuntimeError(f"reward function got {len(completions)} completions, not whole groups of {G}")
        out: list[float] = []
        stats: dict[str, list[float]] = defaultdict(list)
        starts = range(0, len(completions), G)
        for start in starts:
            group_prompts = prompts[start: start + G]
            if any(p != group_prompts[0] for p in group_prompts):
                raise RuntimeError("a question's group was split across processes or batches (GRPO batch layout)")
        extras: list[list[str]] = [[] for _ in starts]
        if self.votes > G and starts:
            if self.extra_sampler is None:
                raise RuntimeError(f"votes ({self.votes}) > samples ({G}) needs bind() to a trainer for extra votes")
            # every group's extra votes in one batched call (one rollout, not one generate per group)
            extras = self.extra_sampler([prompts[start] for start in starts], self.votes - G)
            if len(extras) != len(starts) or any(len(e) != self.votes - G for e in extras):
                raise RuntimeError("the extra-vote sampler returned the wrong number of completions")
        for start, extra in zip(starts, extras):
            sl = slice(start, start + G)
            ids = completion_ids[sl] if completion_ids is not None else None
            ref = reference[start] if reference is not None else None
            rewards, diag = self._group(prompts[start], list(completions[sl]), ids, ref, extra)
            out.extend(rewards)
            for k, v in diag.items():
                stats[k].append(v)
        if log_metric is not None:
            for k, v in stats.items():
                log_metric(k, sum(v) / len(v))
        return out

    def _group(self, prompt, texts: list[str], ids, reference: str | None, extra: list[str]) -> tuple[list[float], dict[str, float]]:
        G = self.group_size
        texts = [t if isinstance(t, str) else t[-1]["content"] for t in texts]  # conversational completions
        answers = [extract_answer(t, self.answer_type) for t in texts + extra]
        classes, reps = self.grader.classify(answers, self.answer_type)
        class_correct = None
        if reference is not None:
            class_correct = [self.grader.equivalent(reference, rep, self.answer_type) is True for rep in reps]
        vote = majority_vote(classes, class_correct)
        truth = E.ground_truth_reward(classes[:G], class_correct) if class_correct is not None else None
        rewards = self._estimate(classes, answers, class_correct, prompt, ids)[:G]
        diag = {"majority_ratio": vote.majority_ratio, "reward_mean": sum(rewards) / G}
        if truth is not None:
            diag["label_accuracy"] = float(vote.correct)
            if self.spec.unit_interval:  # thresholding at 0.5 means nothing for unbounded rewards
                diag["reward_accuracy"] = E.reward_accuracy(rewards, truth)
            diag["train_accuracy"] = sum(truth) / G
        return rewards, diag

    def _estimate(self, classes, answers, class_correct, prompt, ids) -> list[float]:
        """Call the method's estimator with what its registry entry ``needs``, in that order."""
        args: list = []
        scored = None
        token_needs = tuple(n for n in self.spec.needs if n in TOKEN_NEEDS)
        for need in self.spec.needs:
            if need == "classes":
                args.append(classes)
            elif need == "labels":
                if class_correct is None:
                    raise RuntimeError(f"method {self.method!r} needs reference answers")
                args.append(class_correct)
            elif need == "answers":
                args.append(answers)
            elif need == "rng":
                args += [len(classes), self.rng]
            elif need in TOKEN_NEEDS:
                if self.scorer is None or ids is None:
                    raise RuntimeError(f"method {self.method!r} needs the policy's logits; bind() the reward to a trainer first")
                if scored is None:
                    scored = self.scorer([prompt] * len(ids), ids, token_needs)
                scores, mask = scored
                args += [scores[need], mask]
            else:  # a Need the registry allows but nobody taught this function
                raise RuntimeError(f"method {self.method!r}: unknown need {need!r}")
        return self.spec.fn(*args)
