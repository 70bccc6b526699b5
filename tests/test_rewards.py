"""Reward estimators: answer-based ones from a hand-computed case table, logit-based ones
against closed forms and torch.distributions, plus the diagnostics and the registry."""
from __future__ import annotations

import json
import math
import random
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ttrl_bench.errors import UsageError
from ttrl_bench.measure.metrics import Vote, majority_vote
from ttrl_bench.adapt.methods import METHODS as ESTIMATORS
from ttrl_bench.adapt.methods import get_method as get_estimator
from ttrl_bench.adapt import estimators as E
from ttrl_bench.adapt.estimators import (
    ground_truth_reward,
    label_accuracy,
    majority_reward,
    random_reward,
    reward_accuracy,
    soft_majority_reward,
    trajectory_logprob,
)
from ttrl_bench.adapt.token_scores import token_scores


# The logit estimators take per-token scores; these compose them with the chunked
# ``token_scores`` at tiny chunk sizes (2 positions, 3 vocabulary entries), so every closed
# form below also checks the streaming logsumexp across chunk boundaries.
def _scores(logits, name):
    return token_scores(logits, wanted=[name], position_chunk=2, vocab_chunk=3)[name]


def self_certainty(logits, mask):
    return E.self_certainty(_scores(logits, "token_certainty"), mask)


def neg_entropy(logits, mask):
    return E.neg_entropy(_scores(logits, "token_entropy"), mask)

CASES = json.loads((Path(__file__).parent / "cases" / "reward_cases.json").read_text())
ARGS_BY_NEED = {"classes": "classes", "labels": "class_correct", "answers": "answers"}


def _floats(values) -> list[float]:
    return [float(Fraction(v)) for v in values]


# --- answer-based estimators -------------------------------------------------------------

@pytest.mark.parametrize("case", CASES["estimators"], ids=lambda c: c["name"])
def test_estimator_cases(case):
    spec = ESTIMATORS[case["method"]]
    rewards = spec.fn(*(case[ARGS_BY_NEED[need]] for need in spec.needs))
    assert rewards == pytest.approx(_floats(case["expected"]), rel=1e-12)
    assert all(type(r) is float for r in rewards)


@given(st.lists(st.integers(-1, 3), max_size=16))
def test_majority_reward_pays_exactly_the_voted_class(classes):
    winner = majority_vote(classes).cls
    rewards = majority_reward(classes)
    assert len(rewards) == len(classes)
    assert [i for i, r in enumerate(rewards) if r == 1.0] == [i for i, c in enumerate(classes) if c >= 0 and c == winner]
    assert set(rewards) <= {0.0, 1.0}


@given(st.lists(st.integers(-1, 3), min_size=1, max_size=16))
def test_soft_majority_is_highest_for_the_majority_class(classes):
    soft, hard = soft_majority_reward(classes), majority_reward(classes)
    if any(hard):
        top = max(soft)
        assert all(s == top for s, h in zip(soft, hard) if h == 1.0)


def test_answer_estimators_reject_bad_classes():
    with pytest.raises(ValueError):
        soft_majority_reward([0, -2])
    with pytest.raises(ValueError, match="class_correct"):
        ground_truth_reward([0, 2], [True, False])


def test_answer_estimators_do_not_mutate_inputs():
    classes, class_correct = [0, 1, 1, -1], [False, True]
    majority_reward(classes), soft_majority_reward(classes), ground_truth_reward(classes, class_correct)
    assert classes == [0, 1, 1, -1] and class_correct == [False, True]


# --- random control ----------------------------------------------------------------------

def test_random_reward_is_reproducible_from_the_passed_rng_and_leaves_global_state_alone():
    state = random.getstate()
    first = random_reward(64, random.Random(7))
    assert random.getstate() == state
    assert first == random_reward(64, random.Random(7))
    assert first != random_reward(64, random.Random(8))
    assert set(first) == {0.0, 1.0}


def test_random_reward_follows_p():
    assert random_reward(20, random.Random(0), p=0.0) == [0.0] * 20
    assert random_reward(20, random.Random(0), p=1.0) == [1.0] * 20
    draws = random_reward(20_000, random.Random(1), p=0.3)
    # Seeded, so deterministic; the band is about 9 binomial standard deviations wide.
    assert 0.27 < sum(draws) / len(draws) < 0.33


@pytest.mark.parametrize("group_size, p", [(-1, 0.5), (4, -0.1), (4, 1.5)])
def test_random_reward_rejects_bad_arguments(group_size, p):
    with pytest.raises(ValueError):
        random_reward(group_size, random.Random(0), p)


# --- logit-based estimators --------------------------------------------------------------

def _full_mask(g: int, t: int) -> torch.Tensor:
    return torch.ones(g, t, dtype=torch.long)


def test_uniform_logits_give_zero_certainty_and_maximal_entropy():
    vocab = 50
    logits = torch.full((3, 4, vocab), 3.7)
    assert self_certainty(logits, _full_mask(3, 4)) == pytest.approx([0.0] * 3, abs=1e-5)
    assert neg_entropy(logits, _full_mask(3, 4)) == pytest.approx([-math.log(vocab)] * 3, rel=1e-6)


def test_one_hot_logits_give_zero_entropy():
    logits = torch.full((2, 3, 10), float("-inf"))
    logits[..., 4] = 0.0
    assert neg_entropy(logits, _full_mask(2, 3)) == [0.0, 0.0]


def test_peaked_logits_match_their_closed_forms():
    # One token at logit L, the other V-1 at 0: Z = e^L + V - 1.
    vocab, big = 8, 5.0
    logits = torch.zeros(1, 2, vocab, dtype=torch.float64)
    logits[..., 0] = big
    z = math.exp(big) + vocab - 1
    p_top, p_rest = math.exp(big) / z, 1 / z
    entropy = -p_top * math.log(p_top) - (vocab - 1) * p_rest * math.log(p_rest)
    kl_uniform = sum((1 / vocab) * math.log((1 / vocab) / p) for p in [p_top] + [p_rest] * (vocab - 1))
    assert neg_entropy(logits, _full_mask(1, 2)) == pytest.approx([-entropy], rel=1e-12)
    assert self_certainty(logits, _full_mask(1, 2)) == pytest.approx([kl_uniform], rel=1e-12)


def test_logit_scores_agree_with_torch_distributions_on_random_logits():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 6, 32, generator=gen, dtype=torch.float64) * 3
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] + [0] * 5, [0, 1, 1, 0, 1, 0]])
    p = torch.distributions.Categorical(logits=logits)
    uniform = torch.distributions.Categorical(probs=torch.full_like(logits, 1 / 32))
    kl = torch.distributions.kl_divergence(uniform, p)
    keep = mask.bool()
    expected_sc = [kl[i][keep[i]].mean().item() for i in range(4)]
    expected_ne = [-p.entropy()[i][keep[i]].mean().item() for i in range(4)]
    assert self_certainty(logits, mask) == pytest.approx(expected_sc, rel=1e-9)
    assert neg_entropy(logits, mask) == pytest.approx(expected_ne, rel=1e-9)


def test_sharper_distributions_score_higher():
    base = torch.randn(1, 5, 16, generator=torch.Generator().manual_seed(3))
    logits = torch.cat([base / 2.0, base, base * 2.0])  # temperature 2, 1, 0.5
    sc, ne = self_certainty(logits, _full_mask(3, 5)), neg_entropy(logits, _full_mask(3, 5))
    assert sc[0] < sc[1] < sc[2]
    assert ne[0] < ne[1] < ne[2]


def test_padding_positions_never_leak_into_the_mean():
    logits = torch.zeros(1, 3, 4)
    logits[0, 0, 0] = 2.0
    logits[0, 2] = float("nan")  # padding garbage
    mask = torch.tensor([[1, 1, 0]])
    only_real = self_certainty(logits[:, :2], _full_mask(1, 2))
    assert self_certainty(logits, mask) == pytest.approx(only_real, rel=1e-6)
    assert not math.isnan(neg_entropy(logits, mask)[0])


def test_trajectory_logprob_is_the_mean_over_response_tokens():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, float("-inf"), float("nan")]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    assert trajectory_logprob(logprobs, mask) == pytest.approx([-2.0, -0.5])


def test_logit_estimators_accept_half_precision_and_grad_tensors():
    logits = torch.full((2, 3, 64), 0.5, dtype=torch.bfloat16, requires_grad=True)
    assert self_certainty(logits, _full_mask(2, 3)) == pytest.approx([0.0, 0.0], abs=1e-5)
    assert neg_entropy(logits, _full_mask(2, 3)) == pytest.approx([-math.log(64)] * 2, rel=1e-5)


@pytest.mark.parametrize(
    "mask, match",
    [
        (torch.tensor([[1, 1], [0, 0]]), "no response tokens"),
        (torch.tensor([[1, 2], [1, 1]]), "only 0 and 1"),
        (torch.tensor([[1.0, 0.5], [1.0, 1.0]]), "only 0 and 1"),
        (torch.ones(2, 3), "shape"),
    ],
    ids=["empty response", "count", "fraction", "shape"],
)
def test_logit_estimators_reject_bad_masks(mask, match):
    logits = torch.zeros(2, 2, 5)
    for fn in (self_certainty, neg_entropy):
        with pytest.raises(ValueError, match=match):
            fn(logits, mask)
    with pytest.raises(ValueError, match=match):
        trajectory_logprob(torch.zeros(2, 2), mask)


def test_logit_estimators_reject_wrong_ranks():
    for fn in (E.self_certainty, E.neg_entropy, trajectory_logprob):
        with pytest.raises(ValueError, match="G, T"):
            fn(torch.zeros(2, 5, 3), torch.ones(2, 5))


def test_token_scores_match_a_full_log_softmax_for_every_chunking():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 5, 37, generator=gen, dtype=torch.float64) * 4
    logits[0, 0, 5:] = float("-inf")  # a position where most of the vocabulary is masked
    tokens = torch.randint(0, 5, (3, 5), generator=gen)
    logp = torch.log_softmax(logits, -1)
    want_lp = logp.gather(-1, tokens[..., None]).squeeze(-1)
    want_h = torch.special.entr(logp.exp()).sum(-1)
    for pos, voc in [(1, 1), (2, 3), (4, 10), (100, 37), (7, 100)]:
        got = token_scores(logits, tokens, position_chunk=pos, vocab_chunk=voc)
        assert set(got) == {"token_logprob", "token_entropy", "token_certainty"}
        assert all(v.shape == (3, 5) for v in got.values())
        assert torch.allclose(got["token_logprob"], want_lp, rtol=1e-12, atol=1e-12), (pos, voc)
        assert torch.allclose(got["token_entropy"], want_h, rtol=1e-10, atol=1e-12), (pos, voc)
    assert torch.isinf(token_scores(logits, wanted=["token_certainty"], position_chunk=2, vocab_chunk=3)["token_certainty"][0, 0])


def test_token_scores_are_computed_in_fp32_from_bf16_logits():
    logits = (torch.randn(2, 4, 300, generator=torch.Generator().manual_seed(2)) * 3).to(torch.bfloat16)
    got = token_scores(logits, wanted=["token_entropy"], position_chunk=3, vocab_chunk=64)["token_entropy"]
    assert got.dtype == torch.float32
    want = torch.special.entr(torch.softmax(logits.float(), -1)).sum(-1)
    assert torch.allclose(got, want, atol=1e-5)


def test_token_scores_refuse_unknown_scores_and_missing_tokens():
    with pytest.raises(ValueError, match="unknown token scores"):
        token_scores(torch.zeros(2, 3), wanted=["token_perplexity"])
    with pytest.raises(ValueError, match="tokens"):
        token_scores(torch.zeros(2, 3), wanted=["token_logprob"])


# --- diagnostics -------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES["reward_accuracy"], ids=lambda c: c["name"])
def test_reward_accuracy_cases(case):
    assert reward_accuracy(case["estimated"], case["true"]) == pytest.approx(float(Fraction(case["expected"])), rel=1e-12)


def test_reward_accuracy_rejects_mismatched_or_empty_inputs():
    with pytest.raises(ValueError):
        reward_accuracy([1.0], [1.0, 0.0])
    with pytest.raises(ValueError):
        reward_accuracy([], [])


def test_ttrl_reward_accuracy_can_be_high_when_the_label_is_wrong():
    # The "lucky hits" of the TTRL paper: the vote picks a wrong answer, yet the samples that
    # disagree with it are wrong too, so their 0 reward is the right one: 6 of 8 rewards right.
    classes, class_correct = [0, 0, 1, 2, 3, 4, 5, 6], [False] * 7
    vote = majority_vote(classes, class_correct)
    assert label_accuracy(vote) is False
    assert reward_accuracy(majority_reward(classes), ground_truth_reward(classes, class_correct)) == pytest.approx(6 / 8)
    assert label_accuracy(Vote(cls=0, correct=True, tie=False, votes=1, voters=1, majority_ratio=1.0)) is True


# --- registry ----------------------------------------------------------------------------

def test_registry_names_and_label_freedom():
    assert set(ESTIMATORS) == {
        "ttrl", "soft-majority", "self-certainty", "neg-entropy", "leakage", "random", "format", "trajectory-logprob",
        "ttrl+progress", "progress",
    }
    assert [name for name, spec in ESTIMATORS.items() if not spec.label_free] == ["leakage", "progress"]
    assert all(spec.name == name for name, spec in ESTIMATORS.items())


def test_every_estimator_can_be_called_from_its_needs():
    g, t, v = 4, 3, 7
    logits = torch.randn(g, t, v, generator=torch.Generator().manual_seed(0))
    inputs = {
        "classes": ([0, 0, 1, -1],),
        "labels": ([True, False],),
        "answers": (["1", "1", "2", None],),
        "token_certainty": (_scores(logits, "token_certainty"), _full_mask(g, t)),
        "token_entropy": (_scores(logits, "token_entropy"), _full_mask(g, t)),
        "token_logprob": (torch.log_softmax(logits, -1)[..., 0], _full_mask(g, t)),
        "rng": (g, random.Random(0)),
        "progress_true": ([[0.0, 0.5, 1.0], [0.0], [0.5, 0.5], [1.0, 0.0]],),
        "progress_vote": ([[0.0, 0.5, 1.0], [0.0], [0.5, 0.5], [1.0, 0.0]],),
        "progress_weight": (0.5,),
    }
    for name, spec in ESTIMATORS.items():
        rewards = spec.fn(*(arg for need in spec.needs for arg in inputs[need]))
        assert len(rewards) == g and all(isinstance(r, float) for r in rewards), name
        if spec.unit_interval:
            assert all(0.0 <= r <= 1.0 for r in rewards), name


def test_unknown_method_is_a_usage_error_listing_the_known_ones():
    assert get_estimator("ttrl") is ESTIMATORS["ttrl"]
    with pytest.raises(UsageError) as info:
        get_estimator("majority", source="--method")
    message = str(info.value)
    assert message.startswith("--method:") and "majority" in message and "\n" not in message
    assert all(name in message for name in ESTIMATORS)
