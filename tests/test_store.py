"""The resumable sample store: append, reopen, torn tails, and a writer killed mid-run."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import subprocess_env
from ttrl_bench.errors import UsageError
from ttrl_bench.measure.store import SAMPLES_FILE, SampleStore
from ttrl_bench.types import Completion


def completions(qid: str, n: int) -> list[Completion]:
    return [
        Completion(text=f"{qid} sample {j} \\boxed{{{j}}}\nsecond line é", num_tokens=j + 1,
                   finish_reason="stop" if j % 2 else "length")
        for j in range(n)
    ]


def test_append_then_reopen_gives_back_every_question(tmp_path):
    store = SampleStore(tmp_path / SAMPLES_FILE)
    store.append("q1", completions("q1", 3), extra={"seed": 5})
    store.append("q2", completions("q2", 2))
    assert store.done() == {"q1": completions("q1", 3), "q2": completions("q2", 2)}
    reopened = SampleStore(tmp_path)  # a run directory works too
    assert reopened.done() == store.done()
    assert list(reopened.done()) == ["q1", "q2"]


def test_one_json_line_per_completion_with_extra_fields(tmp_path):
    path = tmp_path / SAMPLES_FILE
    SampleStore(path).append("q1", completions("q1", 2), extra={"seed": 5, "chunk": 0})
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["question_id"], r["sample_index"], r["num_samples"], r["seed"]) for r in rows] == [
        ("q1", 0, 2, 5), ("q1", 1, 2, 5)
    ]
    assert rows[1]["text"] == completions("q1", 2)[1].text
    assert rows[1]["num_tokens"] == 2 and rows[1]["finish_reason"] == "stop"


def test_torn_last_line_is_ignored_and_truncated(tmp_path):
    path = tmp_path / SAMPLES_FILE
    SampleStore(path).append("q1", completions("q1", 2))
    intact = path.read_bytes()
    path.write_bytes(intact + b'{"question_id": "q2", "sample_ind')
    store = SampleStore(path)
    assert set(store.done()) == {"q1"}
    assert path.read_bytes() == intact
    store.append("q2", completions("q2", 2))
    assert SampleStore(path).done() == {"q1": completions("q1", 2), "q2": completions("q2", 2)}


def test_question_with_missing_lines_is_not_done(tmp_path):
    path = tmp_path / SAMPLES_FILE
    store = SampleStore(path)
    store.append("q1", completions("q1", 2))
    store.append("q2", completions("q2", 4))
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:4]))  # q1 complete, q2 has 2 of its 4 lines
    assert set(SampleStore(path).done()) == {"q1"}
    assert path.read_bytes() == b"".join(lines[:2])


def test_a_question_stored_twice_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / SAMPLES_FILE
    SampleStore(path).append("q1", completions("q1", 2))
    path.write_bytes(path.read_bytes() * 2)
    with pytest.raises(UsageError, match=f"{path}.*'q1' appears twice"):
        SampleStore(path)


def test_appending_a_done_question_again_is_refused(tmp_path):
    store = SampleStore(tmp_path / SAMPLES_FILE)
    store.append("q1", completions("q1", 2))
    with pytest.raises(ValueError, match="already stored"):
        store.append("q1", completions("q1", 2))
    with pytest.raises(ValueError, match="already stored"):
        SampleStore(tmp_path / SAMPLES_FILE).append("q1", completions("q1", 2))


def test_damage_before_the_tail_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / SAMPLES_FILE
    store = SampleStore(path)
    store.append("q1", completions("q1", 1))
    store.append("q2", completions("q2", 1))
    first, second = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"not json\n" + second)
    with pytest.raises(UsageError, match=f"{path}: line 1 is not valid JSON"):
        SampleStore(path)
    path.write_bytes(first.replace(b'"num_tokens": 1', b'"num_tokens": "1"') + second)
    with pytest.raises(UsageError, match="line 1: field 'num_tokens'"):
        SampleStore(path)


def test_extra_may_not_overwrite_sample_fields(tmp_path):
    with pytest.raises(ValueError, match="'text'"):
        SampleStore(tmp_path / SAMPLES_FILE).append("q1", completions("q1", 1), extra={"text": "x"})


# A writer that appends questions of 64 long samples in a loop, resuming where the
# store stands, until it is killed.
WRITER = """
import sys
from ttrl_bench.measure.store import SampleStore
from ttrl_bench.types import Completion
store = SampleStore(sys.argv[1])
i = len(store.done())
while True:
    qid = f"q{i:06d}"
    store.append(qid, [Completion(f"{qid}/{j}/" + "x" * 4000, j + 1, "length") for j in range(64)])
    i += 1
"""


def run_writer_until_killed(path: Path, min_bytes: int) -> None:
    env = subprocess_env()
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not (path.exists() and path.stat().st_size >= min_bytes):
            assert child.poll() is None, "writer died on its own"
            assert time.monotonic() < deadline, "writer too slow"
            time.sleep(0.01)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


def check_complete_and_contiguous(store: SampleStore) -> int:
    done = store.done()
    assert list(done) == [f"q{i:06d}" for i in range(len(done))]
    for qid, samples in done.items():
        assert [c.text for c in samples] == [f"{qid}/{j}/" + "x" * 4000 for j in range(64)]
    # Opening cut the file back to the end of the last complete question.
    raw = store.path.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 64 * len(done)
    return len(done)


def test_writer_killed_mid_run_leaves_only_complete_questions_and_resumes(tmp_path):
    path = tmp_path / SAMPLES_FILE
    run_writer_until_killed(path, min_bytes=2_000_000)  # about 7 questions
    first = check_complete_and_contiguous(SampleStore(path))
    assert first >= 1
    # Rerunning the same writer resumes after the last complete question.
    size = path.stat().st_size
    run_writer_until_killed(path, min_bytes=size + 2_000_000)
    second = check_complete_and_contiguous(SampleStore(path))
    assert second > first


def test_the_prompt_the_model_saw_is_kept_on_each_questions_first_line(tmp_path):
    path = tmp_path / SAMPLES_FILE
    store = SampleStore(path)
    store.append("q1", completions("q1", 3), prompt="<bos>user: 12+34=\nassistant:")
    store.append("q2", completions("q2", 2))  # a caller without a prompt
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r.get("prompt") for r in rows] == ["<bos>user: 12+34=\nassistant:", None, None, None, None]
    assert SampleStore(path).prompts() == {"q1": "<bos>user: 12+34=\nassistant:"}


def test_sample_all_records_the_rendered_prompt_of_every_question(tmp_path):
    from ttrl_bench.measure.loop import sample_all
    from ttrl_bench.types import Question, SamplingParams

    class Tokenizer:
        chat_template = "x"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            return f"<|user|>{messages[0]['content']}<|assistant|>"

    class Sampler:
        tokenizer = Tokenizer()

        def sample(self, prompts, params):
            return [[Completion(text=f"{p}!", num_tokens=1, finish_reason="stop")] * params.n for p in prompts]

        def close(self):
            pass

    questions = [Question(id=f"q{i}", prompt=f"{i}+{i}=", reference=str(2 * i)) for i in range(3)]
    store = SampleStore(tmp_path)
    params = SamplingParams(n=2, temperature=1.0, top_p=1.0, max_new_tokens=4, seed=0)
    sample_all(questions, Sampler, params, chat_template=True, store=store, progress=False)
    expected = {q.id: f"<|user|>{q.prompt}<|assistant|>" for q in questions}
    assert SampleStore(tmp_path).prompts() == expected
