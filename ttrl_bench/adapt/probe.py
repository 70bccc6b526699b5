"""The periodic measurement of the test set during adaptation, on every process.

Each process measures its own shard of the questions (``questions[rank::world]``) with
the policy as TRL's rollout sees it (``policy.full_policy``: ZeRO-3 gathered, FSDP
summoned), then the shards' grades are gathered on the main process. No process idles
in a collective while another one samples the whole test set (a long probe would hit
the collective timeout), and the probe takes 1/world of the time.

It samples with transformers (``HFSampler``) on the in-memory policy: starting a vLLM
engine per probe would cost more than the probe. The run's ``--backend`` measures the
base and the final model; ``PROBE_BACKEND`` is recorded in every probe row and the report
says so when the two differ (``adapt.summary``).
"""
from __future__ import annotations

from collections.abc import Sequence

from ttrl_bench.measure.loop import Measurement, measure
from ttrl_bench.measure.metrics import summarize
from ttrl_bench.types import Question, SamplingParams

PROBE_BACKEND = "hf"


def merge_shards(shards: Sequence[list[tuple[int, object, list]]]) -> Measurement:
    """One Measurement from the processes' (question index, grade, completions) lists, in question order."""
    rows = sorted((row for shard in shards for row in shard), key=lambda r: r[0])
    grades = [g for _, g, _ in rows]
    completions = [c for _, _, c in rows]
    return Measurement(grades=grades, completions=completions, summary=summarize(grades, completions))


def sharded_probe(trainer, questions: Sequence[Question], params: SamplingParams, *, answer_type, chat_template,
                  grader, tokenizer) -> Measurement | None:
    """Measure the current policy; every process must call it. Returns the Measurement on the
    main process, None on the others."""
    from accelerate.utils import gather_object

    from ttrl_bench.adapt.policy import full_policy
    from ttrl_bench.sampling.hf import HFSampler

    acc = trainer.accelerator
    index = list(range(len(questions)))[acc.process_index:: acc.num_processes]
    # Equal shard sizes: under FSDP every forward is a collective, so every process must make
    # the same number of generate calls; the padding repeats a question and is dropped.
    width = -(-len(questions) // acc.num_processes)
    real = len(index)
    index += [index[-1] if index else 0] * (width - real)
    shard: list[tuple[int, object, list]] = []
    with full_policy(trainer) as policy:
        was_training = policy.training
        policy.eval()
        try:
            if index:
                m = measure(
                    [questions[i] for i in index], lambda: HFSampler.from_model(policy, tokenizer), params,
                    answer_type=answer_type, chat_template=chat_template, grader=grader, progress=False,
                )
                shard = list(zip(index, m.grades, m.completions))[:real]
        finally:
            policy.train(was_training)
    if acc.num_processes == 1:
        return merge_shards([shard])
    gathered = gather_object([shard])  # one list per process
    return merge_shards(gathered) if acc.is_main_process else None
