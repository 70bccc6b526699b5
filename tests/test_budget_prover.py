"""``ttrl-bench budget --prover MODEL``: the forced answers come from another model than the one measured.

Two provers built from the shipped episodes model, whose greedy answers are predictable from the
model's own (all runs greedy, hf backend, the same eval samples):
- digit-shifted: its output layer's digit rows rotated, so where the model would write digit d
  first, it writes d+1 (mod 10): every forced answer's first character is the self-prover's
  shifted, and every forced answer is wrong;
- re-tokenised: the same network under another tokenizer (the ids of the vocabulary permuted, and
  the embedding and output rows with them): a prover with a different tokenizer that computes the
  same function of the *text*, so its forced answers equal the self-prover's exactly. This checks that
  a prefix reaches the prover as text, re-tokenised by its own tokenizer, not as the measured model's ids.
A prover whose tokenizer cannot write the prompts (no token for ";" and ">") is refused in one line.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_cli_eval import run_cli
from ttrl_bench.demo import EPISODES_MODEL
from ttrl_bench.measure.provenance import model_fingerprint
from ttrl_bench.measure.records import load_record
from ttrl_bench.measure.store import SampleStore

DIGITS = "0123456789"
ARGS = ["budget", "--task", "synth_episodes", "--limit", "6", "-n", "2", "--temperature", "0", "--budgets", "2,8,32",
        "--forced-answers", "1", "--no-leaderboard"]


def _load():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(EPISODES_MODEL), AutoTokenizer.from_pretrained(EPISODES_MODEL)


@pytest.fixture(scope="module")
def shifted_prover(tmp_path_factory) -> Path:
    import torch

    model, tokenizer = _load()
    ids = [tokenizer.convert_tokens_to_ids(d) for d in DIGITS]
    with torch.no_grad():
        rows = model.lm_head.weight[ids].clone()
        for d in range(10):  # logit of d+1 := the logit d had
            model.lm_head.weight[ids[(d + 1) % 10]] = rows[d]
    out = tmp_path_factory.mktemp("shifted_prover")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def retokenised_prover(tmp_path_factory) -> Path:
    """The same network under a tokenizer whose non-special ids are reversed."""
    import torch
    from transformers import PreTrainedTokenizerFast

    model, tokenizer = _load()
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    specials = set(tokenizer.all_special_ids)
    movable = sorted(i for i in vocab.values() if i not in specials)
    new_id = {**{i: i for i in specials}, **dict(zip(movable, reversed(movable)))}
    spec["model"]["vocab"] = {tok: new_id[i] for tok, i in vocab.items()}
    order = sorted(range(len(new_id)), key=lambda old: new_id[old])  # row new_id[old] := old row
    with torch.no_grad():
        emb, head = model.model.embed_tokens.weight, model.lm_head.weight
        emb.copy_(emb[order].clone())
        head.copy_(head[order].clone())
    from tokenizers import Tokenizer

    new = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)), bos_token="<bos>",
                                  eos_token="<eos>", pad_token="<pad>", unk_token="<unk>", padding_side="left",
                                  model_max_length=tokenizer.model_max_length)
    assert new("12;3>")["input_ids"] != tokenizer("12;3>")["input_ids"]  # really another tokenizer
    out = tmp_path_factory.mktemp("retokenised_prover")
    model.save_pretrained(out, safe_serialization=True)
    new.save_pretrained(out)
    return out


def forced_answers(budget_dir: Path) -> dict[str, str]:
    return {u: cs[0].text for u, cs in SampleStore(budget_dir / "forced.jsonl").done().items()}


def run_budget(out: Path, *flags: str) -> tuple[Path, dict]:
    before = set(out.glob("budget-*"))
    code, _, stderr = run_cli([*ARGS, "--out", str(out), *flags])
    assert code == 0, stderr
    [bdir] = set(out.glob("budget-*")) - before
    return bdir, json.loads((bdir / "curves.json").read_text())


def test_forced_answers_come_from_the_prover(tmp_path, shifted_prover, retokenised_prover):
    out = tmp_path / "run"
    self_dir, self_curves = run_budget(out)
    samples = (out / "samples.jsonl").read_bytes()
    shift_dir, shift_curves = run_budget(out, "--prover", str(shifted_prover))
    retok_dir, retok_curves = run_budget(out, "--prover", str(retokenised_prover))
    assert (out / "samples.jsonl").read_bytes() == samples  # one set of eval samples, forced three ways

    own, shifted, retok = forced_answers(self_dir), forced_answers(shift_dir), forced_answers(retok_dir)
    assert own.keys() == shifted.keys() == retok.keys()
    assert any(own.values()) and max(p["mean"] for p in self_curves["accuracy"]) > 0.5
    for unit, text in own.items():
        first = text[:1]
        expected = DIGITS[(DIGITS.index(first) + 1) % 10] if first and first in DIGITS else first
        assert shifted[unit][:1] == expected, (unit, text, shifted[unit])
    assert all(p["mean"] == 0.0 for p in shift_curves["accuracy"])  # a shifted first digit is never right
    assert retok == own and retok_curves["accuracy"] == self_curves["accuracy"]

    # the prover is named with its fingerprint, in curves.json, the budget config and the record
    for curves, prover in ((shift_curves, shifted_prover), (retok_curves, retokenised_prover)):
        assert curves["prover"] == {"model_dir": str(prover), "fingerprint": model_fingerprint(prover), "self": False}
        assert curves["cost"]["forced_start_seconds"] > 0  # loaded for the forced answers
    assert self_curves["prover"]["self"] and self_curves["prover"]["fingerprint"] == model_fingerprint(EPISODES_MODEL)
    assert self_curves["cost"]["forced_start_seconds"] == 0.0  # the eval's model answered
    config = json.loads((shift_dir / "config.json").read_text())
    assert config["prover"] == str(shifted_prover)
    assert config["identity"]["prover_fingerprint"] == model_fingerprint(shifted_prover)
    [record_path] = list((out / "records").glob("*.json"))
    assert load_record(record_path).extra["budget"]["prover"]["model_dir"] == str(retokenised_prover)  # the last run's


def test_a_prover_that_cannot_write_the_prompts_is_one_line_before_any_sampling(tmp_path, tiny_model_dir):
    """The test model's character tokenizer has no ">" (the forced suffix) nor ";"."""
    out = tmp_path / "run"
    code, _, stderr = run_cli([*ARGS, "--out", str(out), "--prover", str(tiny_model_dir)])
    assert code == 2
    assert stderr.count("\n") == 1 and "--prover" in stderr and "'>'" in stderr
    assert not (out / "samples.jsonl").exists() and not list(out.glob("budget-*"))


def test_a_prover_that_cannot_write_the_outputs_is_refused_before_the_budget_dir(tmp_path):
    """No ";" in the prover's vocabulary: the prompts ("75+0=" + ">") pass, the model's attempts do not."""
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer

    model, tokenizer = _load()
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    del spec["model"]["vocab"][";"]
    prover = tmp_path / "prover"
    model.save_pretrained(prover, safe_serialization=True)
    PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)), bos_token="<bos>", eos_token="<eos>",
                            pad_token="<pad>", unk_token="<unk>").save_pretrained(prover)
    out = tmp_path / "run"
    code, _, stderr = run_cli([*ARGS, "--out", str(out), "--prover", str(prover)])
    assert code == 2
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("ttrl-bench: error: --prover") and "';'" in last
    assert (out / "samples.jsonl").exists() and not list(out.glob("budget-*"))  # the eval is kept, valid as it is
    # the corrected command (no --prover) runs from the stored eval samples
    code, _, stderr = run_cli([*ARGS, "--out", str(out)])
    assert code == 0, stderr


def test_the_prover_is_loaded_with_the_eval_options(tmp_path, shifted_prover, monkeypatch):
    """--dtype, --batch-size (and the vLLM engine flags) apply to the forced answers' model too."""
    import ttrl_bench.pipeline.budget as budget

    calls = []
    real = budget.make_sampler

    def recording(backend, model, **kwargs):
        calls.append((Path(model), kwargs))
        return real(backend, model, **kwargs)

    monkeypatch.setattr(budget, "make_sampler", recording)
    code, _, stderr = run_cli([*ARGS, "--out", str(tmp_path / "run"), "--prover", str(shifted_prover),
                               "--dtype", "float32", "--batch-size", "7"])
    assert code == 0, stderr
    assert [model for model, _ in calls] == [EPISODES_MODEL, shifted_prover]  # the measured model, then the prover
    for _, kwargs in calls:
        assert kwargs["dtype"] == "float32" and kwargs["batch_size"] == 7


def test_budget_over_a_run_loads_its_prover_once_for_every_member(tmp_path, shifted_prover):
    """``budget --run RUN --prover P``: one prover for the base and each adapted model (here a run
    directory assembled by hand: the base's eval, and a member whose "adapted" model is the base's copy)."""
    import shutil

    run = tmp_path / "run"
    eval_flags = ARGS[1:9]  # --task ... --temperature 0
    code, _, stderr = run_cli(["eval", *eval_flags, "--out", str(run / "base"), "--no-leaderboard"])
    assert code == 0, stderr
    shutil.copy(run / "base" / "config.json", run / "config.json")
    shutil.copytree(run / "base", run / "ttrl", ignore=shutil.ignore_patterns(".ttrl-bench.lock"))
    shutil.copytree(EPISODES_MODEL, run / "ttrl" / "model")
    (run / "ttrl" / "model" / "ADAPTED").write_text("")
    code, stdout, stderr = run_cli(["budget", *eval_flags, "--budgets", "2,8", "--forced-answers", "1", "--run", str(run),
                                    "--prover", str(shifted_prover), "--no-leaderboard"])
    assert code == 0, stderr
    base, member = (json.loads(next((run / name).glob("budget-*/curves.json")).read_text()) for name in ("base", "ttrl"))
    assert base["prover"]["model_dir"] == member["prover"]["model_dir"] == str(shifted_prover)
    assert base["cost"]["forced_start_seconds"] > 0 and member["cost"]["forced_tokens"] > 0
    assert member["cost"]["forced_start_seconds"] == 0.0  # the prover the base's curve loaded
    assert (run / "budget_report.md").exists() and "== ttrl ==" in stdout
