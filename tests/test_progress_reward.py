"""The MRT progress methods on hand-built groups: the bonus arithmetic, `progress` (true label) and
`ttrl+progress` (majority label) through GroupReward with a fake forced-answer prober."""
from __future__ import annotations

import pytest

from ttrl_bench.adapt import estimators as E
from ttrl_bench.adapt.reward import GroupReward, ProgressSettings, episode_prefixes
from ttrl_bench.grading import Grader
from ttrl_bench.tasks.registry import BudgetSettings

SETTINGS = BudgetSettings(episode_marker=";", forced_suffix=">", forced_max_tokens=3)


@pytest.fixture(scope="module")
def grader():
    with Grader(timeout_seconds=5.0, workers=1) as g:
        yield g


def test_progress_bonus_is_the_area_under_the_j_curve_above_j0():
    assert E.progress_bonus([0.0, 0.5, 1.0]) == pytest.approx(0.5)
    # the same total progress made earlier is worth more: this is what lowers cumulative regret
    assert E.progress_bonus([0.0, 1.0, 1.0]) == pytest.approx(2 / 3)
    assert E.progress_bonus([0.0, 0.0, 1.0]) == pytest.approx(1 / 3)
    # = sum_k (E - k + 1) / (E + 1) * (J_k - J_{k-1})
    curve = [0.2, 0.1, 0.7, 0.9]
    steps = [curve[k] - curve[k - 1] for k in range(1, 4)]
    assert E.progress_bonus(curve) == pytest.approx(sum((3 - k + 1) / 4 * d for k, d in enumerate(steps, 1)))
    assert E.progress_bonus([0.4]) == 0.0
    assert E.mean_progress_per_episode([0.0, 0.5, 1.0]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        E.progress_bonus([])


def test_progress_estimators_add_the_weighted_bonus_to_their_outcome():
    curves = [[0.0, 1.0], [0.0, 0.0], [0.5, 0.5], [0.0]]
    assert E.progress_reward([0, 1, 0, -1], [True, False], curves, 0.5) == pytest.approx([1.25, 0.0, 1.0, 0.0])
    # label-free: the outcome is the majority class (0 here, though it is wrong)
    assert E.majority_progress_reward([0, 1, 0, -1], curves, 0.5) == pytest.approx([1.25, 0.0, 1.0, 0.0])


def test_episode_prefixes_follow_the_task_settings():
    assert episode_prefixes("46;47;46>46", SETTINGS) == ["", "46", "46;47", "46;47;46"]
    assert episode_prefixes("x", SETTINGS) == ["", "x"]
    r1 = BudgetSettings(episode_marker=r"\n\nWait", forced_suffix="\nTime is up.\n</think>\n\\boxed{",
                        thinking_end="</think>")
    assert episode_prefixes("a\n\nWait b</think>c", r1) == ["", "a", "a\n\nWait b"]


class FakeProber:
    """The policy's forced answer after a prefix is its last complete attempt ("0" before any)."""

    def __init__(self, m=2):
        self.m, self.calls = m, []

    def __call__(self, prompt, continuations):
        self.calls.append(list(continuations))
        out = []
        for c in continuations:
            body = c[: -len(">")]
            attempts = [a for a in body.split(";") if a]
            out.append([attempts[-1] if attempts else "0"] * self.m)
        return out


def _reward(method, grader, weight=0.5):
    reward = GroupReward(method, answer_type="integer", grader=grader, group_size=4, votes=4, seed=0,
                         progress=ProgressSettings(SETTINGS, weight, 2))
    reward.prober = FakeProber()
    return reward


GROUP = ["46;47;46>46", "47;47>47", "46>46", "x"]
# J curves against 46: [0, 1, 0, 1] (bonus .5), [0, 0, 0] (0), [0, 1] (.5), [0, 0] (0)


def test_progress_uses_the_true_label_for_outcome_and_progress(grader):
    logged = {}
    reward = _reward("progress", grader)
    rewards = reward(prompts=["12+34="] * 4, completions=GROUP, reference=["46"] * 4,
                     log_metric=lambda k, v: logged.__setitem__(k, v))
    assert rewards == pytest.approx([1.25, 0.0, 1.25, 0.0])
    # distinct prefixes are forced once: "", 46, 46;47, 46;47;46, 47, 47;47, x
    assert sorted(reward.prober.calls[0]) == sorted(p + ">" for p in ["", "46", "46;47", "46;47;46", "47", "47;47", "x"])
    assert logged["progress_per_episode"] == pytest.approx((1 / 3 + 0 + 1 + 0) / 4)
    assert logged["progress_bonus"] == pytest.approx((0.5 + 0 + 0.5 + 0) / 4)
    # with another true answer nothing is right: no outcome, no progress
    assert _reward("progress", grader)(prompts=["12+34="] * 4, completions=GROUP, reference=["99"] * 4) == [0.0] * 4


def test_ttrl_progress_judges_against_the_majority_answer_without_labels(grader):
    reward = _reward("ttrl+progress", grader)
    # no reference column at all: label-free; 46 is the majority answer (2 votes of 3)
    assert reward(prompts=["12+34="] * 4, completions=GROUP) == pytest.approx([1.25, 0.0, 1.25, 0.0])
    # the true answer (99) changes nothing: it is never looked at
    reward = _reward("ttrl+progress", grader)
    assert reward(prompts=["12+34="] * 4, completions=GROUP, reference=["99"] * 4) == pytest.approx([1.25, 0.0, 1.25, 0.0])


def test_weight_zero_reduces_to_the_outcome_rewards(grader):
    assert _reward("ttrl+progress", grader, 0.0)(prompts=["12+34="] * 4, completions=GROUP) == [1.0, 0.0, 1.0, 0.0]
    assert _reward("progress", grader, 0.0)(prompts=["12+34="] * 4, completions=GROUP,
                                            reference=["47"] * 4) == [0.0, 1.0, 0.0, 0.0]


def test_progress_methods_refuse_to_run_unbound(grader):
    reward = _reward("ttrl+progress", grader)
    reward.prober = None
    with pytest.raises(RuntimeError, match="bind"):
        reward(prompts=["12+34="] * 4, completions=GROUP)
