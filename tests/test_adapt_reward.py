"""GroupReward, the TRL reward function of ``ttrl-bench run``: hand-made completions graded by a
real Grader (answer type "integer"), each method's rewards, the split-group guards, the
diagnostics handed to TRL's ``log_metric``, extra votes, and the logit methods through a fake scorer."""
from __future__ import annotations

import math

import pytest
import torch

from ttrl_bench.errors import UsageError
from ttrl_bench.adapt.reward import GroupReward
from ttrl_bench.grading import Grader


@pytest.fixture(scope="module")
def grader():
    with Grader(timeout_seconds=5.0, workers=1) as g:
        yield g


def make(method, grader, *, G=4, votes=None, seed=0):
    return GroupReward(method, answer_type="integer", grader=grader, group_size=G, votes=votes or G, seed=seed)


class Metrics:
    """A stand-in for TRL's ``log_metric``: remembers what was logged, refuses a key logged twice."""

    def __init__(self):
        self.logged: dict[str, float] = {}

    def __call__(self, key, value):
        assert key not in self.logged, f"{key} logged twice in one call"
        self.logged[key] = value


def call(reward, completions, *, prompts=None, reference=None, ids=None, log_metric=None):
    """Call like TRL does: one value per completion for every column."""
    n = len(completions)
    prompts = prompts or ["12+34="] * n
    kw = {"completion_ids": ids}
    if reference is not None:
        kw["reference"] = [reference] * n if isinstance(reference, str) else reference
    return reward(prompts=prompts, completions=completions, log_metric=log_metric, question_id=["q"] * n, **kw)


# --- answer-based methods ----------------------------------------------------------------

def test_ttrl_rewards_the_samples_of_the_majority_answer(grader):
    # "1,000" and "1000" are one answer for the integer grader, so they outvote 999
    rewards = call(make("ttrl", grader), ["1,000", "999", "the sum is 1000", "nothing"])
    assert rewards == [1.0, 0.0, 1.0, 0.0]


def test_ttrl_gives_nothing_when_no_sample_answers(grader):
    assert call(make("ttrl", grader), ["no", "digits", "here", "!"]) == [0.0] * 4


def test_leakage_rewards_the_correct_samples_even_against_the_majority(grader):
    completions = ["7", "7", "12", "x"]
    assert call(make("leakage", grader), completions, reference="12") == [0.0, 0.0, 1.0, 0.0]
    assert call(make("ttrl", grader), completions, reference="12") == [1.0, 1.0, 0.0, 0.0]


def test_leakage_without_references_fails_loudly(grader):
    with pytest.raises(RuntimeError, match="reference"):
        call(make("leakage", grader), ["7", "7", "12", "x"])


def test_format_rewards_any_extracted_answer(grader):
    assert call(make("format", grader), ["12", "no answer", "#### 5", ""]) == [1.0, 0.0, 1.0, 0.0]


def test_soft_majority_pays_the_share_of_the_answer_class(grader):
    completions = ["12", "12", "12", "7", "none", "5", "5", "12"]
    rewards = call(make("soft-majority", grader, G=8), completions)
    assert rewards == pytest.approx([0.5, 0.5, 0.5, 0.125, 0.0, 0.25, 0.25, 0.5])


def test_random_control_is_reproducible_for_a_seed(grader):
    completions = ["1"] * 16

    def two_calls(seed):
        reward = make("random", grader, G=16, seed=seed)
        return call(reward, completions), call(reward, completions)

    first, second = two_calls(3)
    assert two_calls(3) == (first, second)
    assert set(first) | set(second) == {0.0, 1.0}
    assert first != second  # the stream moves on from call to call
    assert two_calls(4) != (first, second)


def test_conversational_completions_are_read_from_the_last_message(grader):
    completions = [[{"role": "assistant", "content": text}] for text in ["12", "12", "7", "x"]]
    prompts = [[{"role": "user", "content": "12+0="}]] * 4
    assert call(make("ttrl", grader), completions, prompts=prompts) == [1.0, 1.0, 0.0, 0.0]


def test_a_batch_of_two_groups_is_voted_group_by_group(grader):
    reward = make("ttrl", grader, G=3)
    metrics = Metrics()
    rewards = call(
        reward, ["1", "1", "2", "5", "3", "3"], prompts=["a"] * 3 + ["b"] * 3,
        reference=["1"] * 3 + ["5"] * 3, log_metric=metrics,
    )
    assert rewards == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    # group a: label right, rewards all right; group b: label wrong, 0 of 3 rewards right
    assert metrics.logged["label_accuracy"] == pytest.approx(0.5)
    assert metrics.logged["reward_accuracy"] == pytest.approx((1.0 + 0.0) / 2)
    assert metrics.logged["majority_ratio"] == pytest.approx(2 / 3)
    assert metrics.logged["reward_mean"] == pytest.approx(4 / 6)


# --- split-group guards --------------------------------------------------------------------

def test_a_group_with_different_prompts_is_refused(grader):
    with pytest.raises(RuntimeError, match="split"):
        call(make("ttrl", grader), ["1", "1", "1", "1"], prompts=["a", "a", "b", "b"])


def test_a_group_cut_at_the_end_of_the_batch_is_refused(grader):
    with pytest.raises(RuntimeError, match="whole groups of 4"):
        call(make("ttrl", grader), ["1"] * 6)


# --- diagnostics -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "completions, label_acc, reward_acc, train_acc",
    [
        (["12", "12", "7", "x"], 1.0, 1.0, 0.5),  # majority right: every reward equals the true one
        (["7", "7", "12", "x"], 0.0, 0.25, 0.25),  # majority wrong: only the no-answer sample agrees
    ],
    ids=["majority-right", "majority-wrong"],
)
def test_diagnostics_reach_log_metric(grader, completions, label_acc, reward_acc, train_acc):
    metrics = Metrics()
    call(make("ttrl", grader), completions, reference="12", log_metric=metrics)
    assert metrics.logged["label_accuracy"] == label_acc
    assert metrics.logged["reward_accuracy"] == pytest.approx(reward_acc)
    assert metrics.logged["majority_ratio"] == pytest.approx(0.5)
    assert metrics.logged["reward_mean"] == pytest.approx(0.5)
    assert metrics.logged["train_accuracy"] == pytest.approx(train_acc)


def test_random_control_gets_reward_accuracy_against_the_truth(grader):
    metrics = Metrics()
    reward = make("random", grader, G=8, seed=1)
    rewards = call(reward, ["12"] * 8, reference="12", log_metric=metrics)  # every sample is right
    assert metrics.logged["reward_accuracy"] == pytest.approx(sum(rewards) / 8)
    assert metrics.logged["label_accuracy"] == 1.0


def test_no_references_means_no_label_diagnostics(grader):
    metrics = Metrics()
    call(make("ttrl", grader), ["12", "12", "7", "x"], log_metric=metrics)
    assert set(metrics.logged) == {"majority_ratio", "reward_mean"}


# --- extra votes ------------------------------------------------------------------------------

def test_extra_votes_decide_the_label_but_only_G_rewards_are_returned(grader):
    calls = []

    def extra_sampler(prompts, count):
        calls.append((list(prompts), count))
        return [["12", "12", "12", "nope"][:count] for _ in prompts]

    reward = make("ttrl", grader, G=4, votes=8)
    reward.extra_sampler = extra_sampler
    metrics = Metrics()
    # among the 4 training samples 7 leads 2:1, but the 4 extra votes bring 12 to 4 of 8
    rewards = call(reward, ["7", "7", "12", "x"], reference="12", log_metric=metrics)
    assert rewards == [0.0, 0.0, 1.0, 0.0]
    assert calls == [(["12+34="], 4)]
    assert metrics.logged["label_accuracy"] == 1.0
    assert metrics.logged["majority_ratio"] == pytest.approx(4 / 8)
    assert metrics.logged["reward_accuracy"] == 1.0  # judged on the 4 returned rewards only
    # the same training samples without the extra votes: 7 wins
    assert call(make("ttrl", grader, G=4), ["7", "7", "12", "x"]) == [1.0, 1.0, 0.0, 0.0]


def test_extra_votes_of_all_groups_come_from_one_call_in_group_order(grader):
    calls = []

    def extra_sampler(prompts, count):
        calls.append((list(prompts), count))
        return [["5"] * count, ["6"] * count]

    reward = make("soft-majority", grader, G=2, votes=5)
    reward.extra_sampler = extra_sampler
    rewards = call(reward, ["5", "6", "6", "5"], prompts=["a", "a", "b", "b"])
    assert calls == [(["a", "b"], 3)]  # one batched call for the whole generation batch
    # group a: 5 has 4 of 5 votes, 6 has 1; group b: 6 has 4 of 5 (its extras say 6), 5 has 1
    assert rewards == pytest.approx([0.8, 0.2, 0.8, 0.2])


def test_an_extra_vote_sampler_returning_too_few_is_an_error(grader):
    reward = make("ttrl", grader, G=2, votes=4)
    reward.extra_sampler = lambda prompts, count: [["1"]] * len(prompts)
    with pytest.raises(RuntimeError, match="wrong number"):
        call(reward, ["1", "2"])


def test_the_random_control_differs_between_ranks_and_repeats_per_rank(grader):
    def draws(rank):
        r = GroupReward("random", answer_type="integer", grader=grader, group_size=32, votes=32, seed=7, rank=rank)
        return call(r, ["1"] * 32)

    assert draws(0) == draws(0)
    assert draws(0) != draws(1)


# --- logit methods ------------------------------------------------------------------------------

V = 20


def uniform_scorer(seen):
    """Per-token scores of a uniform policy over V tokens, as the bound scorer returns them."""
    def scorer(prompts, completion_ids, wanted):
        seen.append((list(prompts), [list(c) for c in completion_ids], tuple(wanted)))
        G, T = len(completion_ids), max(len(c) for c in completion_ids)
        mask = torch.zeros(G, T)
        for i, c in enumerate(completion_ids):
            mask[i, : len(c)] = 1
        values = {"token_certainty": 0.0, "token_entropy": math.log(V), "token_logprob": -math.log(V)}
        return {k: torch.full((G, T), values[k]) for k in wanted}, mask

    return scorer


IDS = [[3, 4], [5], [6, 7, 8], [9]]


@pytest.mark.parametrize("method, expected, need", [
    ("self-certainty", 0.0, "token_certainty"),
    ("neg-entropy", -math.log(V), "token_entropy"),
    ("trajectory-logprob", -math.log(V), "token_logprob"),
])
def test_logit_methods_on_uniform_logits(grader, method, expected, need):
    seen = []
    reward = make(method, grader)
    reward.scorer = uniform_scorer(seen)
    rewards = call(reward, ["1", "2", "3", "4"], ids=IDS)
    assert rewards == pytest.approx([expected] * 4, abs=1e-5)
    assert seen == [(["12+34="] * 4, IDS, (need,))]  # asks for the one score it needs


@pytest.mark.parametrize("method", ["self-certainty", "neg-entropy", "trajectory-logprob"])
def test_logit_methods_log_no_reward_accuracy(grader, method):
    # their rewards are not on [0, 1]: thresholding them at 0.5 against 0/1 truths means nothing
    # (uniform logits give self-certainty 0, which would "agree" with every wrong sample)
    metrics = Metrics()
    reward = make(method, grader)
    reward.scorer = uniform_scorer([])
    call(reward, ["12", "12", "7", "x"], ids=IDS, reference="12", log_metric=metrics)
    assert "reward_accuracy" not in metrics.logged
    assert metrics.logged["label_accuracy"] == 1.0
    assert metrics.logged["majority_ratio"] == pytest.approx(0.5)


def test_logit_methods_without_a_bound_scorer_fail_loudly(grader):
    with pytest.raises(RuntimeError, match="bind"):
        call(make("neg-entropy", grader), ["1", "2", "3", "4"], ids=IDS)


def test_unknown_method_is_refused(grader):
    with pytest.raises(UsageError, match="majority-of-two"):
        make("majority-of-two", grader)


# --- the policy access bind() gives the reward (extra votes, token scores) ------------------------

@pytest.fixture(scope="module")
def trainer(tiny_model_dir, tmp_path_factory):
    """A real GRPOTrainer around the tiny model, with rollout settings T=1, top_k=0 (off). The
    checkpoint's generation_config says top_k=1 (greedy), as real checkpoints ship their own
    defaults (many chat models: top_k=20, a repetition_penalty): it must not leak into the votes."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.generation_config.top_k = 1
    args = GRPOConfig(
        output_dir=str(tmp_path_factory.mktemp("grpo")), per_device_train_batch_size=4, num_generations=4,
        max_completion_length=8, temperature=1.0, top_k=0, use_cpu=True, report_to="none",
        gradient_checkpointing=False, max_steps=1, bf16=False,  # as ttrl-bench configures CPU runs
    )
    data = Dataset.from_list([{"prompt": "1+2="}] * 4)
    return GRPOTrainer(model=model, reward_funcs=[lambda completions, **_: [0.0] * len(completions)], args=args,
                       train_dataset=data, processing_class=AutoTokenizer.from_pretrained(tiny_model_dir))


def _bound(grader, trainer, *, votes=8, seed=0, rank=0):
    from ttrl_bench.adapt.policy import bind

    reward = make("ttrl", grader, G=4, votes=votes)
    bind(reward, trainer, seed=seed, rank=rank)
    return reward


def test_extra_votes_use_the_rollout_settings_not_the_checkpoints(grader, trainer):
    trainer.model.train()  # as during training
    votes = _bound(grader, trainer).extra_sampler(["123+456=", "9+9="], 16)
    assert [len(v) for v in votes] == [16, 16] and all(isinstance(t, str) for v in votes for t in v)
    # top_k 0 means "off", as in the rollouts, not "whatever the checkpoint's generation_config says"
    assert all(len(set(v)) > 1 for v in votes)
    assert trainer.model.training  # handed back in training mode


def test_extra_votes_are_seeded_per_rank_and_leave_the_global_rng_alone(grader, trainer):
    before = torch.random.get_rng_state()
    a0 = _bound(grader, trainer, rank=0).extra_sampler(["123+456="], 8)
    assert torch.equal(torch.random.get_rng_state(), before)  # TRL's rollout stream is untouched
    assert _bound(grader, trainer, rank=0).extra_sampler(["123+456="], 8) == a0
    assert _bound(grader, trainer, rank=1).extra_sampler(["123+456="], 8) != a0


def test_scorer_gives_the_log_probs_of_the_sampled_tokens(grader, trainer):
    tok, model = trainer.processing_class, trainer.model
    prompt = "12+34="
    ids = [tok.convert_tokens_to_ids(list("46")) + [tok.eos_token_id], tok.convert_tokens_to_ids(["7"])]
    scores, mask = _bound(grader, trainer).scorer([prompt, prompt], ids, ("token_logprob", "token_entropy"))
    assert set(scores) == {"token_logprob", "token_entropy"}
    logprobs = scores["token_logprob"]
    assert logprobs.shape == mask.shape == (2, 3)
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    prompt_ids = tok(prompt)["input_ids"]
    assert prompt_ids[0] == tok.bos_token_id
    for i, c in enumerate(ids):
        # independent of the scorer's indexing: the model's own shifted loss over the completion
        full = torch.tensor([prompt_ids + c])
        labels = torch.tensor([[-100] * len(prompt_ids) + c])
        with torch.no_grad():
            out = model(input_ids=full, labels=labels)
        assert logprobs[i, : len(c)].sum().item() == pytest.approx(-out.loss.item() * len(c), abs=1e-4)
        step_logits = out.logits[0, len(prompt_ids) - 1: len(prompt_ids) - 1 + len(c)]
        entropy = torch.special.entr(torch.softmax(step_logits, -1)).sum(-1)
        assert torch.allclose(scores["token_entropy"][i, : len(c)], entropy, atol=1e-5)
    # the shorter completion's padding in the batch changes nothing
    alone = _bound(grader, trainer).scorer([prompt], ids[1:], ("token_logprob",))[0]["token_logprob"]
    assert torch.allclose(alone[0, :1], logprobs[1, :1], atol=1e-5)


def test_scorer_micro_batches_under_a_small_logits_budget_give_the_same_scores(trainer):
    from ttrl_bench.adapt.policy import score_completions

    tok, model = trainer.processing_class, trainer.model
    prompts = [tok("12+34=")["input_ids"], tok("7+8=")["input_ids"], tok("100+1=")["input_ids"]]
    comps = [tok.convert_tokens_to_ids(list("46")), tok.convert_tokens_to_ids(list("15")) + [tok.eos_token_id], [5]]
    wanted = ("token_logprob", "token_entropy", "token_certainty")
    whole, mask = score_completions(model, prompts, comps, wanted, pad_id=tok.pad_token_id)
    one_row, mask1 = score_completions(model, prompts, comps, wanted, pad_id=tok.pad_token_id, budget_bytes=1)
    assert torch.equal(mask, mask1)
    for k in wanted:
        assert torch.allclose(whole[k], one_row[k], atol=1e-5), k
