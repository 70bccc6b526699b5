"""The TRL reward function: one estimator from ``ttrl_bench.adapt.methods`` applied group by group.

TRL calls it with the completions of a generation batch, each question's group of
G completions consecutive (``config.check_group_layout`` makes sure a group is never
split across processes; a runtime check here catches any layout that slips past).
True labels reach it as the ``reference`` column: they feed the diagnostics (label
accuracy, reward accuracy) and the ``leakage`` method only.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ttrl_bench.adapt import estimators as E
from ttrl_bench.adapt.methods import TOKEN_NEEDS, get_method
from ttrl_bench.grading import Grader, extract_answer
from ttrl_bench.measure.budget_cuts import episode_cuts, thinking_part
from ttrl_bench.measure.loop import cut_text
from ttrl_bench.measure.metrics import majority_vote
from ttrl_bench.tasks.registry import BudgetSettings
from ttrl_bench.types import AnswerType

# (the prompts of all groups of a generation batch, count) -> count completion texts per prompt,
# in ONE call, so the extra votes of a step are one batched rollout of TRL's own sampler.
ExtraSampler = Callable[[list, int], list[list[str]]]
# (prompts, completion ids, wanted token scores) -> ({score: (G, T)}, mask (G, T))
Scorer = Callable[[Sequence, Sequence[Sequence[int]], tuple[str, ...]], tuple[dict[str, torch.Tensor], torch.Tensor]]
Prober = Callable[[str, list[str]], list[list[str]]]  # (prompt, prefixes + suffix) -> forced answers per prefix


def derived_seed(*parts: object) -> int:
    """A 63-bit seed from (run seed, rank, ...): distinct streams per process, reproducible per run.

    Not ``hash()``: Python salts it per process, and ranks must get different but stable seeds.
    """
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass(frozen=True)
class ProgressSettings:
    """How the progress methods force answers: the task's budget settings and the method's weight."""

    settings: BudgetSettings = BudgetSettings()
    weight: float = 1.0
    answers: int = 4  # m forced answers per prefix


def episode_prefixes(text: str, settings: BudgetSettings) -> list[str]:
    """The prefixes after episode 0 (empty), 1, ..., E of a completion (see measure.budget_cuts)."""
    thinking = thinking_part(text, settings.end_of_thinking)
    return [c.prefix for c in episode_cuts([], thinking, settings.marker_regex())]


class GroupReward:
    """Callable TRL reward function for one method; keeps per-step diagnostics."""

    def __init__(self, method: str, *, answer_type: AnswerType, grader: Grader, group_size: int, votes: int, seed: int,
                 progress: ProgressSettings | None = None, rank: int = 0):
        self.method = method
        self.spec = get_method(method, "method")
        self.answer_type = answer_type
        self.grader = grader
        self.group_size = group_size
        self.votes = votes
        self.seed, self.rank = seed, rank
        # One stream per process: the same seed on every rank would give every rank's groups
        # the same "random" rewards (a correlated control).
        self.rng = random.Random(derived_seed("random-control", seed, rank))
        self.progress = progress or ProgressSettings()
        self.progress_answers = self.progress.answers
        self.extra_sampler: ExtraSampler | None = None  # set by bind() when votes > samples
        self.prober: Prober | None = None  # set by bind(): forced answers of the current policy
        self.scorer: Scorer | None = None
        self.__name__ = f"{method}_reward"  # TRL names the reward column after it

    def __call__(self, prompts, completions, completion_ids=None, reference=None, log_metric=None, until=None,
                 trainer_state=None, **_) -> list[float]:
        G = self.group_size
        if trainer_state is not None:
            # A stream per step, not one running stream: a run resumed from a checkpoint draws what
            # the uninterrupted run drew at that step (the Trainer restores its own RNGs, not ours).
            self.rng = random.Random(derived_seed("random-control", self.seed, self.rank, trainer_state.global_step))
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
            texts = list(completions[sl])
            if until is not None and until[start]:  # lm-eval tasks' stop strings, cut as the eval loop cuts
                stops = json.loads(until[start])
                texts = [cut_text(t, stops) if isinstance(t, str) else t for t in texts]
            rewards, diag = self._group(prompts[start], texts, ids, ref, extra)
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
        # One grader round trip per group: answers, classes and (with a reference) their correctness.
        judged = self.grader.judge(texts + extra, self.answer_type, reference=reference)
        answers, classes, class_correct = judged.answers, judged.classes, judged.class_correct
        vote = majority_vote(classes, class_correct)
        truth = E.ground_truth_reward(classes[:G], class_correct) if class_correct is not None else None
        curves: dict[str, list[list[float]]] = {}
        # the majority answer as the label-free target (its first sample's reading stands for the class)
        targets = {"progress_true": reference, "progress_vote": answers[classes.index(vote.cls)] if vote.cls >= 0 else None}
        for need in self.spec.needs:
            if need in targets:
                curves[need] = self._j_curves(prompt, texts, targets[need])
        rewards = self._estimate(classes, answers, class_correct, prompt, ids, curves)[:G]
        diag = {"majority_ratio": vote.majority_ratio, "reward_mean": sum(rewards) / G}
        for need, rows in curves.items():
            diag["progress_per_episode"] = sum(E.mean_progress_per_episode(r) for r in rows) / len(rows)
            diag["progress_bonus"] = sum(E.progress_bonus(r) for r in rows) / len(rows)
            diag["episodes"] = sum(len(r) - 1 for r in rows) / len(rows)
        if truth is not None:
            diag["label_accuracy"] = float(vote.correct)
            if self.spec.unit_interval:  # thresholding at 0.5 means nothing for unbounded rewards
                diag["reward_accuracy"] = E.reward_accuracy(rewards, truth)
            diag["train_accuracy"] = sum(truth) / G
        return rewards, diag

    def _j_curves(self, prompt, texts: list[str], target: str | None) -> list[list[float]]:
        """J after each episode of each sample: the share of forced answers equivalent to ``target``."""
        settings = self.progress.settings
        prefixes = [episode_prefixes(t, settings) for t in texts]
        if target is None:  # nobody answered: no label to make progress towards
            return [[0.0] * len(p) for p in prefixes]
        if self.prober is None:
            raise RuntimeError(f"method {self.method!r} needs forced answers; bind() the reward to a trainer first")
        distinct = list(dict.fromkeys(p for ps in prefixes for p in ps))
        forced = self.prober(prompt, [settings.forced_text(p) for p in distinct])
        flat = [extract_answer(settings.forced_suffix + a, self.answer_type) for group in forced for a in group]
        # classify the target with the forced answers: identical canonical strings first, math-verify between the rest
        classes, _ = self.grader.classify([target, *flat], self.answer_type)
        hits = [c == classes[0] for c in classes[1:]]
        j, pos = {}, 0
        for prefix, group in zip(distinct, forced):
            j[prefix] = sum(hits[pos : pos + len(group)]) / len(group)
            pos += len(group)
        return [[j[p] for p in ps] for ps in prefixes]

    def _estimate(self, classes, answers, class_correct, prompt, ids, curves=None) -> list[float]:
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
            elif need in ("progress_true", "progress_vote"):
                if curves is None or need not in curves:
                    raise RuntimeError(f"method {self.method!r}: the J curves for {need!r} were not computed")
                args.append(curves[need])
            elif need == "progress_weight":
                args.append(self.progress.weight)
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
