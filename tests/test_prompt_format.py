"""How prompts become token ids for real models: the chat template default ``auto``, the BOS rule
(``--add-bos/--no-add-bos`` and the warning when the model expects a BOS the prompts lack) and
``--dtype``, through ``prepare`` and the real CLI on the tiny model of conftest.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from test_cli_eval import run_cli
from ttrl_bench.errors import UsageError
from ttrl_bench.measure.loop import chunk_size_for, default_chunk_tokens
from ttrl_bench.pipeline.config import EvalConfig, prepare
from ttrl_bench.sampling import base as sampling_base
from ttrl_bench.sampling import encode_prompts, make_sampler, render_prompt
from ttrl_bench.types import SamplingParams

TEMPLATE = "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant] "
GREEDY = SamplingParams(n=1, temperature=0.0, top_p=1.0, max_new_tokens=8, seed=0)
PROMPTS = [f"{a}+{b}=" for a in (3, 17, 250) for b in (4, 61)]


def _variant(src: Path, dest: Path, edit) -> Path:
    """A copy of a model directory whose tokenizer ``edit`` changed."""
    from transformers import AutoTokenizer

    shutil.copytree(src, dest)
    tok = AutoTokenizer.from_pretrained(src)
    edit(tok)
    tok.save_pretrained(dest)
    return dest


@pytest.fixture(scope="module")
def chat_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with a chat template (an 'instruct' tokenizer)."""
    return _variant(tiny_model_dir, tmp_path_factory.mktemp("chat") / "m", lambda t: setattr(t, "chat_template", TEMPLATE))


@pytest.fixture(scope="module")
def nobos_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model whose tokenizer adds no BOS although the config names one (a tokenizer rebuilt from GGUF)."""
    from tokenizers import processors

    def drop_bos(tok):
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B")

    return _variant(tiny_model_dir, tmp_path_factory.mktemp("nobos") / "m", drop_bos)


@pytest.fixture(scope="module")
def gsm8k_data(tmp_path_factory) -> Path:
    """Two rows in GSM8K's fields: the shipped gsm8k task (chat_template: auto) runs offline on them."""
    path = tmp_path_factory.mktemp("data") / "gsm8k.jsonl"
    rows = [{"question": "1+2=", "answer": "so #### 3"}, {"question": "20+22=", "answer": "#### 42"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _prepare(model: Path, data: Path, **kw):
    return prepare(EvalConfig(task="gsm8k", model=str(model), data=str(data), **kw))


def test_auto_chat_template_follows_the_tokenizer_and_flags_still_force_it(tiny_model_dir, chat_model_dir, gsm8k_data):
    base = _prepare(tiny_model_dir, gsm8k_data)  # a tokenizer without template: plain prompts, no exit 2
    assert base.task.prompt.chat_template == "auto"
    assert base.chat_template is False and base.identity["chat_template"] is False
    assert base.prompt_format == {"chat_template": False, "chat_template_requested": "auto", "add_bos": None}
    assert base.identity["chunk"] == {"questions": chunk_size_for(16), "tokens": default_chunk_tokens()}
    chat = _prepare(chat_model_dir, gsm8k_data)
    assert chat.chat_template is True and chat.prompt_format["chat_template_requested"] == "auto"
    assert _prepare(chat_model_dir, gsm8k_data, chat_template=False).chat_template is False
    with pytest.raises(UsageError, match="^--chat-template: .* has no chat template; pass --no-chat-template"):
        _prepare(tiny_model_dir, gsm8k_data, chat_template=True)


def test_eval_records_the_resolved_chat_template_and_prompts_accordingly(chat_model_dir, gsm8k_data, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli(["eval", "--task", "gsm8k", "--data", str(gsm8k_data), "--model", str(chat_model_dir),
                            "-n", "2", "--max-new-tokens", "4", "--out", str(out), "--no-leaderboard"])
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["identity"]["chat_template"] is True
    assert config["prompt_format"] == {"chat_template": True, "chat_template_requested": "auto", "add_bos": None}
    record = json.loads(next((out / "records").glob("*.json")).read_text())
    assert record["extra"]["prompt_format"]["chat_template"] is True
    # what eval prints about sampling cost: start time, tokens/s, memory; and the same numbers on disk
    assert "tokens/s" in err and "start" in err and "peak RSS" in err
    stats = json.loads((out / "sampling_stats.json").read_text())
    assert stats["generated_tokens"] > 0 and stats["tokens_per_second"] > 0 and stats["chunks"] >= 1


def test_a_chat_template_that_writes_bos_gets_one_bos(chat_model_dir):
    sampler = make_sampler("hf", chat_model_dir)
    tok = sampler.tokenizer
    text = render_prompt(tok, "1+2=", chat_template=True)
    assert text.startswith(tok.bos_token)
    for add_bos in (None, True):
        ids = encode_prompts(tok, [text], add_bos=add_bos, model_bos_id=tok.bos_token_id)[0]
        assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id


def test_missing_bos_warns_once_and_add_bos_restores_the_models_input(tiny_model_dir, nobos_model_dir, capsys,
                                                                     monkeypatch):
    monkeypatch.setattr(sampling_base, "_BOS_WARNED", set())
    reference = make_sampler("hf", tiny_model_dir)  # its tokenizer adds BOS itself
    bos = reference.tokenizer.bos_token_id
    nobos = make_sampler("hf", nobos_model_dir)
    capsys.readouterr()
    assert all(ids[0] != bos for ids in nobos.encode(PROMPTS))
    lacking = nobos.sample(PROMPTS, GREEDY)
    nobos.sample(PROMPTS, GREEDY)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "BOS" in line]
    assert len(warnings) == 1 and "--add-bos" in warnings[0] and f"id {bos}" in warnings[0]

    forced = make_sampler("hf", nobos_model_dir, add_bos=True)
    assert forced.encode(PROMPTS) == reference.encode(PROMPTS)  # exactly one BOS, never two
    assert forced.sample(PROMPTS, GREEDY) == reference.sample(PROMPTS, GREEDY)
    assert lacking != reference.sample(PROMPTS, GREEDY), "BOS should matter to the model (else this test proves little)"
    assert capsys.readouterr().err.count("BOS") == 0  # forcing it is an answer to the warning

    stripped = make_sampler("hf", tiny_model_dir, add_bos=False)
    assert stripped.encode(PROMPTS) == nobos.encode(PROMPTS)
    assert stripped.sample(PROMPTS, GREEDY) == lacking


def test_add_bos_and_dtype_flags_reach_the_run(nobos_model_dir, gsm8k_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sampling_base, "_BOS_WARNED", set())
    out = tmp_path / "run"
    code, _, err = run_cli(["eval", "--task", "gsm8k", "--data", str(gsm8k_data), "--model", str(nobos_model_dir),
                            "-n", "2", "--max-new-tokens", "4", "--out", str(out), "--no-leaderboard",
                            "--add-bos", "--dtype", "bfloat16"])
    assert code == 0, err
    assert "BOS" not in err
    config = json.loads((out / "config.json").read_text())
    assert config["identity"]["add_bos"] is True and config["identity"]["dtype"] == "bfloat16"
    assert config["prompt_format"]["add_bos"] is True


def test_bad_prompt_flags_exit_2_naming_the_flag(tiny_model_dir, gsm8k_data, tmp_path):
    base = ["eval", "--task", "gsm8k", "--data", str(gsm8k_data), "--model", str(tiny_model_dir), "--no-leaderboard"]
    for extra, flag in ((["--chat-template"], "--chat-template"), (["--chunk-tokens", "0"], "--chunk-tokens"),
                        (["--vllm-kv-cache-gb", "2"], "--vllm-kv-cache-gb")):
        out = tmp_path / flag.strip("-")
        code, _, err = run_cli([*base, "--out", str(out), *extra])
        assert code == 2 and err.startswith(f"ttrl-bench: error: {flag}") and err.count("\n") == 1, err
        assert not out.exists(), "a refused command leaves no run directory behind"
