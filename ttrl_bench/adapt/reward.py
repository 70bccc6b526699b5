"""The TRL reward function: one estimator from ``ttrl_bench.adapt.methods`` applied group by group.

TRL calls it with the completions of a generation batch, each question's group of
G completions consecutive (``config.check_group_layout`` makes sure a group is never
split across processes; a runtime check here catches any layout that slips past).
True labels reach it as the ``reference`` column: they feed the diagnostics (label
accuracy, reward accuracy) and the ``leakage`` method only.
"""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence

import torch

from ttrl_bench.adapt import estimators as E
from ttrl_bench.adapt.methods import get_method
from ttrl_bench.grading import Grader, extract_answer
from ttrl_bench.measure.metrics import majority_vote
from ttrl_bench.types import AnswerType

ExtraSampler = Callable[[str, int], list[str]]  # (prompt, count) -> completion texts


class GroupReward:
    """Callable TRL reward function for one method; keeps per-step diagnostics."""

    def __init__(self, method: str, *, answer_type: AnswerType, grader: Grader, group_size: int, votes: int, seed: int):
        self.method = method
        self.spec = get_method(method, "method")
        self.answer_type = answer_type
        self.grader = grader
        self.group_size = group_size
        self.votes = votes
        self.seed = seed
        self.rng = random.Random(seed)
        self.extra_sampler: ExtraSampler | None = None  # set by bind() when votes > samples
        self.scorer: Callable[[Sequence[str], Sequence[Sequence[int]]], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None
        self.__name__ = f"{method}_reward"  # TRL names the reward column after it

    def __call__(self, prompts, completions, completion_ids=None, reference=None, log_metric=None,
                 trainer_state=None, **_) -> list[float]:
        G = self.group_size
        if trainer_state is not None:
            # A stream per step, not one running stream: a run resumed from a checkpoint draws what
            # the uninterrupted run drew at that step (the Trainer restores its own RNGs, not ours).
            self.rng = random.Random(f"{self.seed}:{trainer_state.global_step}")
        if len(completions) % G:
            raise RuntimeError(f"reward function got {len(completions)} completions, not whole groups of {G}")
        out: list[float] = []
        stats: dict[str, list[float]] = defaultdict(list)
        for start in range(0, len(completions), G):
            sl = slice(start, start + G)
            group_prompts = prompts[sl]
            if any(p != group_prompts[0] for p in group_prompts):
                raise RuntimeError("a question's group was split across processes or batches (GRPO batch layout)")
            ids = completion_ids[sl] if completion_ids is not None else None
            ref = reference[start] if reference is not None else None
            rewards, diag = self._group(group_prompts[0], list(completions[sl]), ids, ref)
            out.extend(rewards)
            for k, v in diag.items():
                stats[k].append(v)
        if log_metric is not None:
            for k, v in stats.items():
                log_metric(k, sum(v) / len(v))
        return out

    def _group(self, prompt, texts: list[str], ids, reference: str | None) -> tuple[list[float], dict[str, float]]:
        G = self.group_size
        texts = [t if isinstance(t, str) else t[-1]["content"] for t in texts]  # conversational completions
        extra: list[str] = []
        if self.votes > G:
            if self.extra_sampler is None:
                raise RuntimeError(f"votes ({self.votes}) > samples ({G}) needs bind() to a trainer for extra votes")
            extra = self.extra_sampler(prompt, self.votes - G)
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
            elif need in ("logits", "logprobs"):
                if self.scorer is None or ids is None:
                    raise RuntimeError(f"method {self.method!r} needs the policy's logits; bind() the reward to a trainer first")
                if scored is None:
                    scored = self.scorer([prompt] * len(ids), ids)
                logits, logprobs, mask = scored
                args += [logits if need == "logits" else logprobs, mask]
            else:  # a Need the registry allows but nobody taught this function
                raise RuntimeError(f"method {self.method!r}: unknown need {need!r}")
        return self.spec.fn(*args)
