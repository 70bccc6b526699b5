"""The methods registry: every adaptation method, what its reward needs, and how tables show it.

The CLI's ``--methods`` choices and help, the reward function's dispatch, and the order
and colour of methods in every table and figure all come from ``METHODS``; a method added
here is available everywhere, and nothing else lists method names.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from ttrl_bench.adapt import estimators as E
from ttrl_bench.errors import UsageError

# What an estimator is called with, in the order of ``Method.needs``:
#   classes -> the group's answer classes (-1 = no answer)
#   labels  -> class_correct: which classes match the reference (true labels: not label-free)
#   answers -> the extracted answer strings (None = none)
#   token_certainty -> (KL(uniform || p) per response token (G, T), mask (G, T))
#   token_entropy   -> (entropy of p per response token (G, T), mask (G, T))
#   token_logprob   -> (log p of the sampled tokens (G, T), mask (G, T))
#     (the three are computed on the policy's device by ``adapt.token_scores``, chunked over
#     positions and vocabulary: the (G, T, V) logits are never materialised in fp32 or copied)
#   rng     -> (group size, a random.Random seeded per run, process and step)
#   progress_true -> each sample's J curve over its episodes, forced answers judged against the true answer
#   progress_vote -> the same, judged against the group's majority answer (label-free)
#   progress_weight -> the weight of the progress bonus (--progress-weight)
Need = Literal["classes", "labels", "answers", "token_certainty", "token_entropy", "token_logprob", "rng",
               "progress_true", "progress_vote", "progress_weight"]
TOKEN_NEEDS: tuple[Need, ...] = ("token_certainty", "token_entropy", "token_logprob")


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable[..., list[float]]
    needs: tuple[Need, ...]
    label_free: bool
    unit_interval: bool  # rewards lie in [0, 1], so reward accuracy (thresholded at 0.5) is meaningful
    summary: str
    display: str  # as tables and legends show it
    colour: str  # the same in every figure
    control: bool = False  # a control (random, format), not a reward anybody proposes


# Display order: the paper's pair, the controls, then the other label-free rewards.
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("ttrl", E.majority_reward, ("classes",), True, True,
               "1 if the answer matches the majority answer of the votes", "TTRL", "#1f77b4"),
        Method("leakage", E.ground_truth_reward, ("classes", "labels"), False, True,
               "1 if the answer is correct (true labels: the upper bound)", "leakage", "#2ca02c"),
        Method("random", E.random_reward, ("rng",), True, True, "Bernoulli(0.5): a control", "random", "#7f7f7f",
               control=True),
        Method("format", E.format_reward, ("answers",), True, True, "1 if an answer can be extracted: a control",
               "format", "#bcbd22", control=True),
        Method("ttrl+progress", E.majority_progress_reward, ("classes", "progress_vote", "progress_weight"), True, False,
               "TTRL + MRT progress bonus, forced answers judged against the majority answer (label-free)",
               "TTRL+progress", "#8c6d31"),
        Method("progress", E.progress_reward, ("classes", "labels", "progress_true", "progress_weight"), False, False,
               "true-label outcome + MRT progress bonus judged against the true answer (MRT)", "progress",
               "#d62728"),
        Method("soft-majority", E.soft_majority_reward, ("classes",), True, True,
               "share of the group giving the same answer (EMPO/SRT)", "soft-majority", "#9467bd"),
        Method("self-certainty", E.self_certainty, ("token_certainty",), True, False,
               "mean KL(uniform || p) over response tokens (INTUITOR)", "self-certainty", "#8c564b"),
        Method("neg-entropy", E.neg_entropy, ("token_entropy",), True, False,
               "minus the mean token entropy (RENT / EM-RL)", "neg-entropy", "#e377c2"),
        Method("trajectory-logprob", E.trajectory_logprob, ("token_logprob",), True, False,
               "mean log-prob of the sampled tokens (EM-RL seq)", "trajectory-logprob", "#17becf"),
    )
}

BASE_COLOUR = "#000000"
# "base" (the unadapted model) first, then the registry's order; unknown names sort last, alphabetically.
METHOD_ORDER: tuple[str, ...] = ("base", *METHODS)


def get_method(name: str, source: str = "--methods") -> Method:
    """The registry entry of ``name``; ``source`` names the flag or field in the error."""
    try:
        return METHODS[name]
    except KeyError:
        raise UsageError(f"{source}: unknown method {name!r}; expected one of: {', '.join(METHODS)}") from None


def parse_methods(text: str | Iterable[str], source: str = "--methods") -> tuple[str, ...]:
    """Method names from "a,b" or a sequence, checked against the registry, duplicates dropped."""
    names = [m.strip() for m in text.split(",")] if isinstance(text, str) else [str(m).strip() for m in text]
    names = [m for m in names if m]
    if not names:
        raise UsageError(f"{source}: no method given; expected some of: {', '.join(METHODS)}")
    for name in names:
        get_method(name, source)
    return tuple(dict.fromkeys(names))


def sort_methods(names: Iterable[str]) -> list[str]:
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(set(names), key=lambda m: (rank.get(m, len(rank)), m))


def display_name(method: str) -> str:
    return METHODS[method].display if method in METHODS else method


def colour(method: str) -> str:
    if method == "base":
        return BASE_COLOUR
    if method in METHODS:
        return METHODS[method].colour
    return "#ff7f0e"  # any method the registry does not know (records from elsewhere)


def methods_help() -> str:
    return "; ".join(f"{m.name}: {m.summary}" for m in METHODS.values())
