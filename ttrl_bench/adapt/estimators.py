"""Label-free reward estimators (TTRL, EMPO/SRT, INTUITOR, RENT/EM-RL and the controls) and training diagnostics.

Each estimator is a pure function over ONE prompt's group of G samples and returns G
floats. Answer-based estimators take the group's answer classes (-1 = no answer; numbered
as in ``QuestionGrade``); logit-based ones take per-token scores (G, T) of the policy
over the response tokens (``adapt.token_scores``). Nothing here touches global state (the random control gets its rng passed in).

The methods registry (``ttrl_bench.adapt.methods``) names them and says what each needs.
torch is imported only by the logit-based ones, so reading the registry stays cheap.
"""
from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING, Sequence

from ttrl_bench.measure.metrics import Vote, majority_vote

if TYPE_CHECKING:
    import torch


# --- answer-based estimators -------------------------------------------------------------

def majority_reward(classes: Sequence[int]) -> list[float]:
    """TTRL: 1 for samples in the majority class (``metrics.majority_vote``'s rule), else 0.

    No-answer samples get 0; if nobody answered, everyone gets 0 (an empty answer must
    never be the "label").
    """
    winner = majority_vote(classes).cls
    return [1.0 if cls >= 0 and cls == winner else 0.0 for cls in classes]


def soft_majority_reward(classes: Sequence[int]) -> list[float]:
    """EMPO/SRT soft vote: the share of the whole group (no-answer samples included) in the sample's class."""
    _check_classes(classes)
    counts = Counter(classes)
    return [counts[cls] / len(classes) if cls >= 0 else 0.0 for cls in classes]


def ground_truth_reward(classes: Sequence[int], class_correct: Sequence[bool]) -> list[float]:
    """Leakage upper bound (uses the labels): 1 if the sample's class is equivalent to the reference."""
    _check_classes(classes, class_correct)
    return [1.0 if cls >= 0 and class_correct[cls] else 0.0 for cls in classes]


def format_reward(answers: Sequence[str | None]) -> list[float]:
    """Format control: 1 if an answer was extracted.

    A blank answer (e.g. an empty ``\\boxed{}``) counts as none: rewarding it would pay
    the policy for the empty-answer hack the format control is not meant to teach.
    """
    return [1.0 if answer is not None and answer.strip() else 0.0 for answer in answers]


def random_reward(group_size: int, rng: random.Random, p: float = 0.5) -> list[float]:
    """Spurious-rewards control: independent Bernoulli(p) draws from the caller's rng."""
    if group_size < 0:
        raise ValueError(f"group_size must be >= 0, got {group_size}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    return [1.0 if rng.random() < p else 0.0 for _ in range(group_size)]


# --- progress (MRT) -------------------------------------------------------------------------
# A sample's "J curve" is [J_0, J_1, ..., J_E]: the share of answers forced after episode
# 0 (the prompt alone), 1, ..., E (its whole thinking) that match a target answer (the true
# one for `progress`, the group's majority answer for `ttrl+progress`).

def progress_bonus(j_curve: Sequence[float]) -> float:
    """MRT's progress, summed over episodes and weighted by how long each gain is held.

    progress_k = J_k - J_{k-1}. Their plain sum telescopes to J_E - J_0, and J_0 is the same
    for every sample of a group, so with one scalar reward per sample (GRPO's group-relative
    advantage) it would only reward the final forced answer again. MRT credits progress
    densely, per episode; the scalar that keeps that intent is the area under the J curve over
    episodes: sum_k (E - k + 1) / (E + 1) * progress_k = mean(J_0..J_E) - J_0. Early progress
    counts more than the same progress made late, which is what lowers cumulative regret.
    """
    if not j_curve:
        raise ValueError("a J curve needs at least J_0")
    return sum(j_curve) / len(j_curve) - j_curve[0]


def mean_progress_per_episode(j_curve: Sequence[float]) -> float:
    """(J_E - J_0) / E, the diagnostic logged as progress per episode (0 without episodes)."""
    episodes = len(j_curve) - 1
    return (j_curve[-1] - j_curve[0]) / episodes if episodes else 0.0


def progress_reward(classes: Sequence[int], class_correct: Sequence[bool], j_curves: Sequence[Sequence[float]],
                    weight: float) -> list[float]:
    """MRT upper bound: 0/1 outcome against the true answer + weight * progress bonus (J against the truth)."""
    outcome = ground_truth_reward(classes, class_correct)
    return [o + weight * progress_bonus(c) for o, c in zip(outcome, j_curves)]


def majority_progress_reward(classes: Sequence[int], j_curves: Sequence[Sequence[float]], weight: float) -> list[float]:
    """Label-free: TTRL's majority outcome + weight * progress bonus (J against the majority answer)."""
    outcome = majority_reward(classes)
    return [o + weight * progress_bonus(c) for o, c in zip(outcome, j_curves)]


def _check_classes(classes: Sequence[int], class_correct: Sequence[bool] | None = None) -> None:
    for cls in classes:
        if cls < -1:
            raise ValueError(f"answer classes must be >= -1 (-1 = no answer), got {cls}")
        if class_correct is not None and cls >= len(class_correct):
            raise ValueError(f"class {cls} has no entry in class_correct (length {len(class_correct)})")


# --- logit-based estimators --------------------------------------------------------------
# They take per-token scores (G, T) of the policy on its own samples, computed where the
# logits are by ``adapt.token_scores`` (the (G, T, V) logits never leave the device), from
# the raw (unprocessed: no temperature, top-k or top-p) logits; mask: (G, T), 1 on response
# tokens, 0 on padding. TRL's completion mask includes the EOS token, so every real
# response has >= 1 token; an all-zero row is refused rather than given a made-up score
# (0 would be the best possible neg-entropy, a free reward for an empty response).

def _masked_token_mean(per_token: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """Mean over the positions where mask is 1, per sample; padding values never leak in."""
    import torch

    if per_token.dim() != 2:
        raise ValueError(f"per-token scores must have shape (G, T), got {tuple(per_token.shape)}")
    if mask.shape != per_token.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match (G, T) = {tuple(per_token.shape)}")
    per_token = per_token.detach()
    if per_token.dtype != torch.float64:
        per_token = per_token.float()
    mask = mask.detach().to(per_token.device)
    keep = mask.to(torch.bool)
    if not torch.equal(keep.to(mask.dtype), mask):
        raise ValueError("mask must hold only 0 and 1")
    lengths = keep.sum(dim=1)
    empty = (lengths == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"samples {empty} have no response tokens (mask row all 0)")
    # where(), not multiplication: padding positions may hold -inf or nan.
    total = torch.where(keep, per_token, torch.zeros((), dtype=per_token.dtype, device=per_token.device)).sum(dim=1)
    return (total / lengths).tolist()


def self_certainty(token_certainty: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """INTUITOR self-certainty: per sample, the mean over response tokens of KL(U || p).

    token_certainty: (G, T), KL(U || p) at each position (``token_scores``): with U uniform
    over the V vocabulary entries and p = softmax(logits), KL(U || p) = logsumexp(logits)
    - mean(logits) - log V (Zhao et al. 2025, arXiv 2505.19590, eq. "Self-certainty"). It is
    0 for a uniform p and grows as p concentrates. The INTUITOR code
    drops the constant -log V; GRPO's group-relative advantage is unchanged by it, and keeping
    it makes the score the KL it is named after.
    """
    return _masked_token_mean(token_certainty, mask)


def neg_entropy(token_entropy: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """RENT / EM-RL: minus the mean over response tokens of the entropy of softmax(logits), in nats.

    token_entropy: (G, T) (``token_scores``). Ranges from -log V (uniform) to 0 (one-hot).
    """
    return [-value for value in _masked_token_mean(token_entropy, mask)]


def trajectory_logprob(token_logprobs: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """EM-RL sequence variant: the mean log-probability of the sampled response tokens.

    token_logprobs: (G, T), log p(sampled token) at each response position.
    """
    return _masked_token_mean(token_logprobs, mask)


# --- training diagnostics ----------------------------------------------------------------

def label_accuracy(vote: Vote) -> bool:
    """TTRL's label accuracy for one question: the voted label equals the true answer."""
    return vote.correct


def reward_accuracy(estimated: Sequence[float], true: Sequence[float]) -> float:
    """Share of samples whose estimated reward agrees with the true (ground-truth) reward.

    Both are thresholded at 0.5 (reward >= 0.5 counts as 1), so for 0/1 rewards this is
    plain equality, and a soft-majority share counts as 1 from half the group up. Only
    meaningful for rewards on [0, 1] (``Method.unit_interval``): a neg-entropy is
    never >= 0.5 and a self-certainty has no fixed scale.
    """
    if len(estimated) != len(true):
        raise ValueError(f"reward_accuracy got {len(estimated)} estimated and {len(true)} true rewards")
    if not estimated:
        raise ValueError("reward_accuracy needs at least one sample")
    agree = sum((e >= 0.5) == (t >= 0.5) for e, t in zip(estimated, true))
    return agree / len(estimated)
