"""Questions reach the sampler in chunks sized by tokens (``measure.loop.plan_chunks``): each finished
chunk is on disk before the next starts, so a kill loses at most one, and chunk seeds keep a resumed
run identical to an uninterrupted one. Runs the tiny model of conftest through the hf backend.
"""
from __future__ import annotations

import pytest

from ttrl_bench.data import load_questions
from ttrl_bench.measure.loop import CHUNK_TOKENS, chunk_size_for, plan_chunks, sample_all
from ttrl_bench.measure.store import SampleStore
from ttrl_bench.sampling import make_sampler
from ttrl_bench.tasks import get_task
from ttrl_bench.types import Question, SamplingParams

PARAMS = SamplingParams(n=4, temperature=1.0, top_p=1.0, max_new_tokens=6, seed=11)


def cost(length: int, params: SamplingParams = PARAMS) -> int:
    return params.n * (length + params.max_new_tokens)


def test_chunks_respect_the_token_and_question_limits_and_cover_every_question():
    lengths = [10, 10, 50, 3, 200, 10, 10, 10, 4, 4, 4]
    for max_questions in (1, 2, 3, 100):
        for max_tokens in (1, 100, 300, 10_000):
            chunks = plan_chunks(lengths, PARAMS, max_questions, max_tokens)
            assert [i for c in chunks for i in c] == list(range(len(lengths)))
            for c in chunks:
                assert 1 <= len(c) <= max_questions
                # over the budget only when one question alone exceeds it
                assert sum(cost(lengths[i]) for i in c) <= max_tokens or len(c) == 1
            for a, b in zip(chunks, chunks[1:]):  # greedy: the next question would not have fitted
                over = sum(cost(lengths[i]) for i in a) + cost(lengths[b.start]) > max_tokens
                assert over or len(a) == max_questions


def test_the_embedded_tasks_keep_their_chunks():
    """Prompts of a few tokens: the sequence count, not the token budget, still cuts the chunks on CPU,
    so runs of the embedded model draw exactly what they drew before chunks were sized by tokens."""
    from ttrl_bench.demo import EMBEDDED_MODEL
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(EMBEDDED_MODEL)
    for name in ("synth_near", "synth_shift"):
        task = get_task(name)
        params = task.generation.sampling_params(0)
        lengths = [len(ids) for ids in tok([q.prompt for q in load_questions(task)])["input_ids"]]
        per_call = chunk_size_for(params.n)
        expected = [range(i, min(i + per_call, len(lengths))) for i in range(0, len(lengths), per_call)]
        assert plan_chunks(lengths, params, per_call, CHUNK_TOKENS["cpu"]) == expected


class Killed(Exception):
    pass


class CountingSampler:
    """A real sampler that records each call and dies on call ``die_at`` (a kill mid-run)."""

    def __init__(self, inner, die_at: int | None = None):
        self.inner, self.die_at, self.calls = inner, die_at, []
        self.tokenizer = inner.tokenizer

    def encode(self, prompts):
        return self.inner.encode(prompts)

    def sample(self, prompts, params):
        if len(self.calls) == self.die_at:
            raise Killed
        self.calls.append([len(ids) for ids in self.encode(prompts)])
        return self.inner.sample(prompts, params)

    def close(self):
        pass


@pytest.fixture(scope="module")
def hf(tiny_model_dir):
    return make_sampler("hf", tiny_model_dir)


QUESTIONS = [Question(id=f"q{i:02d}", prompt=f"{i * 37 % 1000}+{i * 11}=" + "0" * (i % 7), reference="0")
             for i in range(14)]


def test_a_kill_loses_at_most_the_running_chunk_and_resuming_redraws_the_same(hf, tmp_path):
    budget = 3 * cost(12)  # about three questions per call
    whole = CountingSampler(hf)
    reference = sample_all(QUESTIONS, lambda: whole, PARAMS, chat_template=False, chunk_tokens=budget, progress=False)
    assert len(whole.calls) >= 4, "the budget should cut several chunks"
    for call in whole.calls:
        assert sum(cost(length) for length in call) <= budget

    store_path = tmp_path / "samples.jsonl"
    dying = CountingSampler(hf, die_at=2)
    with pytest.raises(Killed):
        sample_all(QUESTIONS, lambda: dying, PARAMS, chat_template=False, chunk_tokens=budget,
                   store=SampleStore(store_path), progress=False)
    saved = SampleStore(store_path).done()
    assert list(saved) == [q.id for q in QUESTIONS[: sum(map(len, whole.calls[:2]))]]  # both finished chunks

    resumed = CountingSampler(hf)
    again = sample_all(QUESTIONS, lambda: resumed, PARAMS, chat_template=False, chunk_tokens=budget,
                       store=SampleStore(store_path), progress=False)
    assert again == reference
    assert resumed.calls == whole.calls[2:]  # nothing finished was sampled again


def test_the_chunk_budget_changes_the_draws_so_it_is_part_of_the_identity(hf):
    few = QUESTIONS[:6]
    small = sample_all(few, lambda: CountingSampler(hf), PARAMS, chat_template=False, chunk_tokens=2 * cost(12),
                       progress=False)
    large = sample_all(few, lambda: CountingSampler(hf), PARAMS, chat_template=False, chunk_tokens=10**6,
                       progress=False)
    assert small[:2] == large[:2]  # the first chunk starts at the same question: same chunk seed
    assert small != large
