"""The openai backend against a fake OpenAI-compatible server on 127.0.0.1 (tests/fake_openai.py).

The fake answers deterministically from (prompt, seed + j), so "no sample lost" and "resume = no
resume" are checked by equality with a fault-free run. The real-server test (vLLM's OpenAI server
on the embedded model) is in test_openai_vllm_server.py.
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from fake_openai import MODEL_ID, FakeServer, fake_text
from ttrl_bench.cli import main
from ttrl_bench.errors import BackendError, UsageError
from ttrl_bench.sampling import PartialSample, make_sampler, prompt_seed
from ttrl_bench.sampling.openai import ServerOptions
from ttrl_bench.types import Completion, SamplingParams

PROMPTS = ["1+2=", "33+44=", "123+456=", "9+9=", "5+6=", "70+80="]
PARAMS = SamplingParams(n=4, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=11)


def expected(prompts=PROMPTS, params=PARAMS) -> list[list[Completion]]:
    """What any fault-free run must return: choice j of prompt i is fake_text(prompt, prompt_seed(seed, i) + j)."""
    out = []
    for i, p in enumerate(prompts):
        texts = [fake_text(p, prompt_seed(params.seed, i) + j) for j in range(params.n)]
        out.append([Completion(text=t, num_tokens=len(t) + 1, finish_reason="stop") for t in texts])
    return out


def sampler(*urls: str, **options):
    return make_sampler("openai", None, server=ServerOptions(base_urls=tuple(urls), **options))


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_one_request_per_prompt_with_n_and_its_own_seed():
    with FakeServer() as server:
        s = sampler(server.url, concurrency=3)
        assert s.sample(PROMPTS, PARAMS) == expected()
        s.close()
    assert len(server.requests) == len(PROMPTS)
    by_prompt = {r["prompt"]: r for r in server.requests}
    for i, p in enumerate(PROMPTS):
        sent = by_prompt[p]
        assert sent["n"] == 4 and sent["seed"] == prompt_seed(11, i) and sent["max_tokens"] == 8
        assert sent["logprobs"] == 0 and sent["model"] == MODEL_ID and "top_k" not in sent


def test_greedy_asks_once_and_replicates_and_top_k_goes_in_the_body():
    with FakeServer() as server:
        s = sampler(server.url)
        out = s.sample(PROMPTS[:2], SamplingParams(n=3, temperature=0.0, top_p=1.0, max_new_tokens=8, seed=0, top_k=5))
    assert all(len(g) == 3 and len({c.text for c in g}) == 1 for g in out)
    assert all(r["n"] == 1 and "seed" not in r and r["top_k"] == 5 for r in server.requests)


def test_429_500_timeouts_resets_and_malformed_answers_are_retried_and_nothing_is_lost():
    faults = ["429", "500", "malformed", "short", "timeout", "reset", "429", "malformed"]
    with FakeServer(faults=faults, sleep=1.5) as server:
        s = sampler(server.url, concurrency=2, timeout=0.5, max_retries=4)
        assert s.sample(PROMPTS, PARAMS) == expected()
    assert len(server.requests) == len(PROMPTS) + len(faults)


def test_several_servers_share_the_questions_and_give_the_same_samples():
    with FakeServer(delay=0.05) as a, FakeServer(delay=0.05) as b:
        s = sampler(a.url, b.url, concurrency=2)
        prompts = PROMPTS * 3
        assert s.sample(prompts, PARAMS) == expected(prompts)
    assert len(a.requests) + len(b.requests) == len(prompts)
    assert len(a.requests) >= 4 and len(b.requests) >= 4  # both worked; the queue balances them


def test_after_the_retry_budget_a_clear_error_and_the_finished_prompts_are_handed_back():
    with FakeServer(faults=[None, None, "500", "500", "500"]) as server:  # prompt 2's request fails 3 times
        s = sampler(server.url, concurrency=1, max_retries=2)
        with pytest.raises(PartialSample) as caught:
            s.sample(PROMPTS, PARAMS)
    cause = caught.value.cause
    assert isinstance(cause, BackendError)
    assert server.url in str(cause) and "after 2 retries" in str(cause) and "500" in str(cause)
    assert caught.value.finished == dict(enumerate(expected()[:2]))


def test_bad_key_bad_url_and_unknown_model_are_usage_errors():
    with FakeServer(api_key="right") as server:
        with pytest.raises(UsageError, match="--api-key"):
            sampler(server.url, api_key="wrong")
        assert sampler(server.url, api_key="right").model_id == MODEL_ID
        with pytest.raises(UsageError, match="--model-id: 'other' is not served"):
            sampler(server.url, api_key="right", model_id="other")
        with pytest.raises(UsageError, match="GET /models answered 404"):
            sampler(server.url.removesuffix("/v1") + "/nope", api_key="right")
    with pytest.raises(UsageError, match="cannot connect"):
        sampler(server.url, max_retries=0)  # the server is gone now


def test_chat_endpoint_sends_the_question_as_a_user_message():
    with FakeServer() as server:
        s = make_sampler("openai", None, server=ServerOptions(base_urls=(server.url,), endpoint="chat"))
        assert s.takes_messages
        assert s.sample(PROMPTS[:2], PARAMS) == expected(PROMPTS[:2])
    assert [r["messages"] for r in server.requests if r["messages"][0]["content"] == "1+2="] == [[{"role": "user", "content": "1+2="}]]
    assert all(r["logprobs"] is True for r in server.requests)


# --- through the CLI ---------------------------------------------------------------------------------

def eval_argv(urls: list[str], out: Path, *extra: str) -> list[str]:
    argv = ["eval", "--backend", "openai", "--limit", "12", "-n", "4", "--out", str(out), "--no-leaderboard"]
    for url in urls:
        argv += ["--base-url", url]
    return argv + list(extra)


def test_cli_bad_url_or_key_is_one_line_exit_2_and_leaves_nothing(tmp_path):
    with FakeServer(api_key="k") as server:
        code, _, err = run_cli(eval_argv([server.url], tmp_path / "a", "--api-key", "bad"))
        assert code == 2 and err.count("\n") == 1 and "--api-key" in err
        code, _, err = run_cli(eval_argv(["http://127.0.0.1:9/v1"], tmp_path / "b", "--max-retries", "0"))
        assert code == 2 and err.count("\n") == 1 and "--base-url http://127.0.0.1:9/v1: cannot connect" in err
        code, _, err = run_cli(eval_argv(["ftp://x"], tmp_path / "c"))
        assert code == 2 and err.count("\n") == 1 and "--base-url" in err
    assert not any(tmp_path.iterdir())


def test_cli_server_failure_exit_3_keeps_finished_questions_and_the_rerun_resumes(tmp_path):
    """A server that fails for good mid-run: exit 3 with one line; the rerun samples only what is
    missing and ends with exactly the samples of an uninterrupted run (and no API key on disk)."""
    out, clean = tmp_path / "run", tmp_path / "clean"
    with FakeServer() as healthy:
        assert run_cli(eval_argv([healthy.url], clean))[0] == 0
    with FakeServer(api_key="secret-key") as server:
        # -n 4 -> chunks of 64 questions: all 12 in one call; the 6th request fails for good
        server.faults = [None] * 5 + ["500"] * 3
        code, _, err = run_cli(eval_argv([server.url], out, "--api-key", "secret-key", "--max-retries", "2",
                                         "--max-concurrency", "1"))
        assert code == 3, err
        assert err.strip().count("\n") == 0 and "after 2 retries" in err.strip().splitlines()[-1]
        stored = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
        assert len({r["question_id"] for r in stored}) == 5  # the finished ones, kept
        before = len(server.requests)
        code, _, err = run_cli(eval_argv([server.url], out, "--api-key", "secret-key"))
        assert code == 0, err
        assert len(server.requests) - before == 12 - 5  # only the missing questions were asked for
    samples = {r["question_id"] + f":{r['sample_index']}": r["text"]
               for r in map(json.loads, (out / "samples.jsonl").read_text().splitlines())}
    reference = {r["question_id"] + f":{r['sample_index']}": r["text"]
                 for r in map(json.loads, (clean / "samples.jsonl").read_text().splitlines())}
    assert samples == reference
    assert json.loads((out / "metrics.json").read_text()) == json.loads((clean / "metrics.json").read_text())
    assert "secret-key" not in (out / "config.json").read_text()


def test_cli_run_refuses_the_openai_backend(tmp_path):
    code, _, err = run_cli(["run", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "r")])
    assert code == 2 and "--backend openai" in err and err.count("\n") == 1
