"""Budget forcing (MRT): regret arithmetic against hand-computed values, cuts at token budgets and
episode boundaries, the episodes corpus, and resumable forced-answer sampling (fake sampler)."""
from __future__ import annotations

import random
import re

import pytest

from ttrl_bench.data import episodes as EP
from ttrl_bench.data.synthetic import SPLIT_DIGITS
from ttrl_bench.demo.tokenizer import build_tokenizer
from ttrl_bench.grading import Grader
from ttrl_bench.measure import regret as R
from ttrl_bench.measure.budget import budget_curves, cut_samples, force_answers
from ttrl_bench.measure.budget_cuts import budget_cuts, default_budgets, episode_cuts, thinking_part, token_ends
from ttrl_bench.measure.store import SampleStore
from ttrl_bench.tasks.registry import BUILTIN_SPLITS, BudgetSettings
from ttrl_bench.types import Completion, Question, QuestionGrade, SamplingParams


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(EP.EXTRA_CHARS)


# --- regret arithmetic ---------------------------------------------------------------------

def test_cumulative_regret_matches_a_hand_computed_example():
    grid = [0, 2, 4]
    comparator = [0.5, 0.5, 1.0]
    forced = [0.5, 0.25, 0.5]
    # gaps 0, .25, .5; trapezoids: [0,2] -> 2 * (0 + .25) / 2 = .25; [2,4] -> 2 * (.25 + .5) / 2 = .75
    assert R.cumulative_regret(grid, comparator, forced) == pytest.approx([0.25 / 2, 1.0 / 4])
    # oracle (J* = 1): gaps .5, .75, .5 -> areas 1.25 and 2.5
    assert R.cumulative_regret(grid, [1.0] * 3, forced) == pytest.approx([1.25 / 2, 2.5 / 4])


def test_regret_is_negative_when_the_forced_curve_beats_the_comparator():
    assert R.cumulative_regret([0, 10], [0.0, 0.0], [0.0, 1.0]) == pytest.approx([-0.5])


@pytest.mark.parametrize("grid", [[1, 2], [0, 2, 2], [0]])
def test_regret_refuses_a_grid_that_does_not_start_at_zero_and_increase(grid):
    with pytest.raises(ValueError):
        R.cumulative_regret(grid, [0.0] * len(grid), [0.0] * len(grid))


def test_parallel_comparator_by_hand():
    classes, correct = [0, 0, 1, -1], [True, False]  # 2 of 4 right; one sample without answer
    grid, forced = [0, 2, 4, 8, 16], [0.1, 0.2, 0.3, 0.4, 0.5]
    maj, ks = R.comparator_curve(grid, forced, classes, correct, mean_length=4.0, kind="maj")
    assert ks == [0, 0, 1, 2, 4]
    # k = 0: no whole sample fits, the comparator is the forced curve itself; k = 1: c / n;
    # k = 2: of the 6 pairs only {2, 3} (a wrong answer and a blank) votes wrong -> 5/6; k = n: the vote
    assert maj == pytest.approx([0.1, 0.2, 0.5, 5 / 6, 1.0])
    pas, _ = R.comparator_curve(grid, forced, classes, correct, mean_length=4.0, kind="pass")
    assert pas == pytest.approx([0.1, 0.2, 0.5, 1 - 1 / 6, 1.0])


def test_tokens_to_ninety_percent_is_the_first_budget_reaching_it():
    assert R.tokens_to_fraction([0, 2, 4, 8], [0.1, 0.5, 0.85, 0.9]) == 4
    assert R.tokens_to_fraction([0, 2, 4, 8], [0.9, 0.5, 0.85, 0.9]) == 0


def test_budget_curves_end_to_end_on_hand_made_numbers():
    from ttrl_bench.measure.budget import ForcedResult, unit_id

    q = Question(id="q", prompt="1+1=", reference="2")
    grade = QuestionGrade(question_id="q", answers=["2", "3"], classes=[0, 1], class_correct=[True, False])
    comps = [Completion("2;3;2>2", 8, "stop"), Completion("3;3>3", 6, "stop")]  # mean length 7 tokens
    settings = BudgetSettings(episode_marker=";", forced_suffix=">", forced_max_tokens=2)
    grid = [0, 2, 4, 8]
    cuts = [cut_samples(build_tokenizer(EP.EXTRA_CHARS), comps, settings, grid)]
    assert [c.prefix for c in cuts[0][0].budget] == ["", "2;", "2;3;", "2;3;2"]
    assert [c.prefix for c in cuts[0][1].budget] == ["", "3;", "3;3", "3;3"]
    assert [c.prefix for c in cuts[0][0].episodes] == ["", "2", "2;3", "2;3;2"]
    j = {"": 0.5, "2;": 1.0, "2;3;": 0.5, "2;3;2": 1.0, "3;": 0.0, "3;3": 0.0, "2": 1.0, "2;3": 0.5, "3": 0.0}
    forced = ForcedResult(j={unit_id("q", p): v for p, v in j.items()}, units=len(j), forced_tokens=0, seconds=0.0)
    curves = budget_curves([q], [grade], [comps], cuts, forced, grid)
    assert [p["mean"] for p in curves["accuracy"]] == pytest.approx([0.5, 0.5, 0.25, 0.5])
    assert curves["tokens_used"] == pytest.approx([0, 2, 3.5, 4])
    # one whole sample (7 tokens) fits only at 8: the comparator is then pass@1 = .5, elsewhere J itself
    assert curves["parallel_k"] == [0, 0, 0, 1]
    assert [p["mean"] for p in curves["parallel_maj"]] == pytest.approx([0.5, 0.5, 0.25, 0.5])
    assert [p["mean"] for p in curves["regret"]] == pytest.approx([0, 0, 0])
    # oracle gaps .5, .5, .75, .5: areas 1, 2.25, 4.75
    assert [p["mean"] for p in curves["regret_oracle"]] == pytest.approx([1 / 2, 2.25 / 4, 4.75 / 8])
    # episodes carried forward past the second sample's end: [.5, 1, .5, 1] and [.5, 0, 0, 0]
    assert [p["mean"] for p in curves["episodes"]["accuracy"]] == pytest.approx([0.5, 0.5, 0.25, 0.5])
    assert [p["mean"] for p in curves["episodes"]["progress"]] == pytest.approx([0.0, -0.25, 0.25])
    assert curves["tokens_to_90"]["mean"] == 0
    assert curves["per_question"]["regret_oracle"] == pytest.approx([4.75 / 8])


# --- cuts ----------------------------------------------------------------------------------

def test_thinking_ends_at_the_first_forced_suffix_the_model_wrote():
    assert thinking_part("12;13>12", ">") == "12;13"
    assert thinking_part("reason </think> answer </think>", "</think>\n\n") == "reason "
    assert thinking_part("no close at all", "</think>") == "no close at all"


def test_token_budget_cuts_are_exact_prefixes_and_stop_at_the_end(tokenizer):
    thinking = "46;47;46"
    ends = token_ends(tokenizer, thinking)
    assert len(ends) == 8  # one character per token
    cuts = budget_cuts(ends, thinking, [0, 1, 3, 4, 8, 32])
    assert [c.prefix for c in cuts] == ["", "4", "46;", "46;4", thinking, thinking]
    assert [c.tokens for c in cuts] == [0, 1, 3, 4, 8, 8]


def test_episode_cuts_end_before_each_marker(tokenizer):
    thinking = "46;47;;46"
    cuts = episode_cuts(token_ends(tokenizer, thinking), thinking, re.compile(";"))
    # a repeated marker starts no empty episode
    assert [c.prefix for c in cuts] == ["", "46", "46;47", thinking]
    assert [c.tokens for c in cuts] == [0, 2, 5, 9]
    assert [c.prefix for c in episode_cuts([], "abc", None)] == ["", "abc"]
    assert [c.prefix for c in episode_cuts([], ";46", re.compile(";"))] == ["", ";46"]


def test_episode_cuts_with_an_r1_style_marker_on_a_bpe_like_offset_map():
    class Words:  # a fast-tokenizer stand-in: one token per word, offsets as a fast tokenizer gives them
        is_fast = True

        def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
            spans = [m.span() for m in re.finditer(r"\s*\S+", text)]
            return {"input_ids": list(range(len(spans))), "offset_mapping": spans}

    thinking = "Let x=2.\n\nWait, check: 2+2=4.\n\nAlternatively add."
    ends = token_ends(Words(), thinking)
    cuts = episode_cuts(ends, thinking, re.compile(r"\n\nWait|\n\nAlternatively"))
    assert [c.prefix for c in cuts] == ["", "Let x=2.", "Let x=2.\n\nWait, check: 2+2=4.", thinking]
    assert [c.tokens for c in cuts] == [0, 2, 5, 7]
    assert [c.prefix for c in budget_cuts(ends, thinking, [3])] == ["Let x=2.\n\nWait,"]


def test_default_budgets_are_powers_of_two_then_the_limit():
    assert default_budgets(32) == [1, 2, 4, 8, 16, 32]
    assert default_budgets(20) == [1, 2, 4, 8, 16, 20]


# --- the episodes corpus and task ---------------------------------------------------------

def test_builtin_splits_match_the_generator():
    assert set(BUILTIN_SPLITS) == set(SPLIT_DIGITS)


def test_vote_is_per_digit_with_ties_to_the_first_seen():
    assert EP.vote_digits(["46", "47", "16"]) == "46"
    assert EP.vote_digits(["47", "46"]) == "47"
    assert EP.vote_digits(["123", "923", "183"]) == "123"


def test_episode_completions_vote_their_attempts():
    rng = random.Random(0)
    for prompt, completion in EP.episode_examples(rng, 300, EP.EpisodeMix(), exclude=set()):
        a, b = map(int, prompt[:-1].split("+"))
        body, _, final = completion.partition(EP.ANSWER_MARKER)
        attempts = body.split(EP.EPISODE_MARKER) if body else []
        whole = [x for x in attempts if len(x) == len(str(a + b))]
        if len(whole) == len(attempts) and attempts:  # no cut-off partial attempt
            assert final == EP.vote_digits(attempts)
        assert len(final) == len(str(a + b))


def test_more_attempts_make_the_vote_right_more_often():
    rng, mix = random.Random(1), EP.EpisodeMix()
    acc = []
    for k in (1, 3, 5):
        hits = sum(EP.vote_digits([EP.noisy_attempt(rng, "57", mix.corrupt_rate) for _ in range(k)]) == "57"
                   for _ in range(2000))
        acc.append(hits / 2000)
    assert acc[0] < acc[1] < acc[2]


# --- resumable forced answers ---------------------------------------------------------------

class FakeSampler:
    """Answers ``>`` prompts by reading the last attempt (noisy by seed); can fail after some calls."""

    backend = "fake"

    def __init__(self, log, fail_after=None):
        self.tokenizer = build_tokenizer(EP.EXTRA_CHARS)
        self.log, self.fail_after = log, fail_after

    def sample(self, prompts, params):
        if self.fail_after is not None and len(self.log) >= self.fail_after:
            raise KeyboardInterrupt
        self.log.append(len(prompts))
        out = []
        for i, p in enumerate(prompts):
            rng = random.Random(params.seed + i)
            last = p.rstrip(">").split("=")[-1].split(";")[-1] or "0"
            out.append([Completion(last if rng.random() < 0.7 else "99", 2, "stop") for _ in range(params.n)])
        return out

    def close(self):
        pass


def test_forced_answers_resume_after_an_interruption_with_the_same_results(tmp_path):
    settings = BudgetSettings(episode_marker=";", forced_suffix=">", forced_max_tokens=2)
    tok = build_tokenizer(EP.EXTRA_CHARS)
    questions = [Question(id=f"q{i}", prompt=f"{i}+1=", reference=str(i + 1)) for i in range(12)]
    comps = [[Completion(f"{i + 1};{i + 2};{i + 1}>{i + 1}", 8, "stop")] for i in range(12)]
    cuts = [cut_samples(tok, c, settings, [0, 2, 4, 8]) for c in comps]
    params = SamplingParams(n=3, temperature=1.0, top_p=1.0, max_new_tokens=2, seed=5)

    def run(store_path, log, fail_after=None):
        with Grader(timeout_seconds=5.0, workers=1) as grader:
            return force_answers(questions, [q.prompt for q in questions], cuts, settings=settings,
                                 sampler_factory=lambda: FakeSampler(log, fail_after), params=params,
                                 answer_type="integer", grader=grader, store=SampleStore(store_path),
                                 progress=False, chunk=10)

    whole_log: list = []
    whole = run(tmp_path / "a.jsonl", whole_log)
    # distinct prefixes: "1;2;1" gives "", "1", "1;", "1;2", "1;2;", "1;2;1" (6; q0..q7); from "9;10;9"
    # on, the 2- and 4-token cuts coincide with episode ends, so 5 each (q8..q11): a prefix is forced once
    assert whole.units == 8 * 6 + 4 * 5
    assert sum(whole_log) == whole.units
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b.jsonl", [], fail_after=2)
    assert len(SampleStore(tmp_path / "b.jsonl").done()) == 20  # two chunks of 10 were stored
    resumed_log: list = []
    resumed = run(tmp_path / "b.jsonl", resumed_log)
    assert sum(resumed_log) == whole.units - 20  # nothing stored is sampled again
    assert resumed.j == whole.j  # and the answers are those of the uninterrupted run
    assert len(set(whole.j.values())) > 1  # (the fake sampler's noise makes that a real check)


# --- records: the budget metrics in `check` and `leaderboard` -------------------------------

def _budget_record(method: str, regrets: list[float]):
    from ttrl_bench.measure.metrics import QuestionScore
    from ttrl_bench.measure.records import Record

    ids = [f"q{i}" for i in range(len(regrets))]
    mean = sum(regrets) / len(regrets)
    return Record(
        model="m", model_fingerprint="f", task="synth_episodes", data_fingerprint="d", method=method,
        metrics={"pass@1": {"mean": 0.5, "stderr": 0.1}, "regret": {"mean": mean, "stderr": 0.01}},
        per_question=[QuestionScore(id=i, n=2, c=1, maj_correct=True) for i in ids], sampling={},
        extra={"budget": {"per_question": {"regret": dict(zip(ids, regrets))}}},
    )


def test_check_treats_a_rise_in_regret_as_the_regression():
    from ttrl_bench.report.gate import check

    rng = random.Random(0)
    low = [0.1 + 0.02 * rng.random() for _ in range(40)]
    high = [x + 0.2 for x in low]
    assert check([_budget_record("base", low)], [_budget_record("base", high)], metric="regret").exit_code == 1
    better = check([_budget_record("base", high)], [_budget_record("base", low)], metric="regret")
    assert better.exit_code == 0 and better.rows[0].verdict == "improvement"


def test_budget_metric_without_budget_results_is_a_usage_error():
    from ttrl_bench.errors import UsageError
    from ttrl_bench.report.gate import check
    from dataclasses import replace

    bare = replace(_budget_record("base", [0.1, 0.2]), extra={})
    with pytest.raises(UsageError, match="ttrl-bench budget"):
        check([bare], [bare], metric="regret")


def test_leaderboard_shows_regret_in_points():
    from ttrl_bench.report.leaderboard import build_table

    table = build_table([_budget_record("base", [0.1, 0.3])], metrics=("regret",), layout="long")
    assert any(abs(getattr(cell, "mean", -1) - 20.0) < 1e-9 for row in table.rows for cell in row)
