"""``ttrl-bench run`` end to end on the tiny random model (one CPU process): the run directory,
the train log and its diagnostics, records and report, rerunning without retraining, extra
votes drawn from the policy, and a run interrupted by Ctrl-C that resumes from its checkpoint."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import interrupt_cli
import torch
from safetensors.torch import load_file

from ttrl_bench.adapt import train as train_module
from ttrl_bench.measure.summary import Summary
from ttrl_bench.adapt.summary import train_summary
from ttrl_bench.adapt.train_log import parse_rows
from ttrl_bench.cli import main
from ttrl_bench.adapt.methods import display_name

METHODS = ("ttrl", "leakage", "random")
TRAIN_KEYS = ("reward", "label_accuracy", "reward_accuracy", "majority_ratio")


def run_argv(model_dir, out, *extra):
    return [
        "run", "--model", str(model_dir), "-n", "4", "--prompts-per-step", "2", "--samples", "4",
        "--out", str(out), "--no-leaderboard", *extra,
    ]


def read_log(method_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (method_dir / "train_log.jsonl").read_text().splitlines()]


def step_rows(rows):
    """The per-step training rows (not the end-of-training summary TRL logs at the last step)."""
    return [r for r in rows if r["kind"] == "train" and "reward" in r]


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(directory)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def full_run(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    argv = run_argv(
        tiny_model_dir, out, "--limit", "8", "--steps", "4", "--eval-every", "2", "--votes", "4",
        "--lr", "1e-3", "--methods", ",".join(METHODS),
    )
    rc = main(argv)
    return SimpleNamespace(out=out, rc=rc, argv=argv, model_dir=tiny_model_dir)


def test_run_exits_0_and_writes_a_directory_per_method(full_run):
    assert full_run.rc == 0
    for method in METHODS:
        mdir = full_run.out / method
        assert (mdir / "model" / "ADAPTED").exists()
        assert json.loads((mdir / "model" / "ADAPTED").read_text()) == {
            "method": method, "steps": 4, "processes": 1, "dtype": "float32", "lora_r": 0, "distributed": "NO"}
        # the model is saved: resume needs no checkpoint any more, and none is kept
        assert not (mdir / "checkpoints").exists() and not (mdir / "model.staging").exists()
        for name in ("model.safetensors", "config.json", "tokenizer.json"):
            assert (mdir / "model" / name).is_file(), (method, name)
        assert (mdir / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (mdir / "samples.jsonl").is_file() and (mdir / "metrics.json").is_file()
    assert (full_run.out / "base" / "metrics.json").is_file()


def test_ttrl_trained_and_saved_the_trained_weights(full_run):
    base = load_file(full_run.model_dir / "model.safetensors")
    adapted = load_file(full_run.out / "ttrl" / "model" / "model.safetensors")
    assert base.keys() == adapted.keys()
    assert any(not torch.equal(base[k], adapted[k]) for k in base)


@pytest.mark.parametrize("method", METHODS)
def test_train_log_has_every_step_with_the_diagnostics(full_run, method):
    rows = read_log(full_run.out / method)
    train = step_rows(rows)
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    for r in train:
        for key in TRAIN_KEYS:
            assert 0.0 <= r[key] <= 1.0, (method, r["step"], key)
        # 2 questions x 4 samples a step: means of 0/1 rewards are multiples of 1/8
        assert (8 * r["reward"]) == pytest.approx(round(8 * r["reward"]))
        assert r["reward"] == pytest.approx(r["reward_mean"])
        assert r["label_accuracy"] in (0.0, 0.5, 1.0)
    evals = [r for r in rows if r["kind"] == "eval"]
    # every 2 steps; the last step is measured from the saved model, by the same code as the base model
    assert [r["step"] for r in evals] == [2]
    assert {"pass@1", "maj@4", "eval_majority_ratio"} <= evals[0].keys()


def test_train_log_diagnostics_match_each_method(full_run):
    for r in step_rows(read_log(full_run.out / "ttrl")):
        # votes = samples: the majority's samples are rewarded, so the mean reward is the majority ratio
        assert r["reward"] == pytest.approx(r["majority_ratio"])
    for r in step_rows(read_log(full_run.out / "leakage")):
        # the true reward: it always agrees with itself, and its mean is the training accuracy
        assert r["reward_accuracy"] == 1.0
        assert r["reward"] == pytest.approx(r["train_accuracy"])
    wrong_steps = 0
    for method in METHODS:
        for r in step_rows(read_log(full_run.out / method)):
            if r["train_accuracy"] == 0.0:  # every sample wrong (the random model mostly is)
                wrong_steps += 1
                # then a sample's reward is right exactly when it is 0
                assert r["reward_accuracy"] == pytest.approx(1.0 - r["reward"]), (method, r["step"])
    assert wrong_steps >= 4


@pytest.mark.parametrize("method", METHODS)
def test_record_per_method_names_a_label_free_best_step(full_run, method):
    mdir = full_run.out / method
    records = list((mdir / "records").glob("*.json"))
    assert len(records) == 1
    rec = json.loads(records[0].read_text())
    assert rec["method"] == method
    assert rec["method_config"]["steps"] == 4 and rec["method_config"]["votes"] == 4
    # plots are relative to the record file
    assert [(records[0].parent / plot).resolve() for plot in rec["plots"]] == [(mdir / "training.png").resolve()]
    extra = rec["extra"]
    assert "label-free" in extra["best_criterion"]
    assert extra["final_step"] == 4
    summary = json.loads((mdir / "train_summary.json").read_text())
    evals = summary["evals"]
    assert [e["step"] for e in evals] == [2, 4]  # the logged eval and the final measurement
    best = max(evals, key=lambda e: (e["eval_majority_ratio"], e["step"]))
    assert extra["best_step"] == best["step"]
    assert extra["best_step_pass@1"] == best["pass@1"]
    # the last "eval" is the final model's measurement, the one the record reports
    final = json.loads((mdir / "metrics.json").read_text())
    assert final["num_questions"] == 8 and final["n"] == 4
    assert evals[-1]["pass@1"] == final["scores"]["pass@1"]["mean"] == rec["metrics"]["pass@1"]["mean"]
    assert evals[-1]["eval_majority_ratio"] == final["votes"]["mean_majority_ratio"]
    # the record carries the eval curve from the base model (step 0) and the raw per-step signals
    base = json.loads((full_run.out / "base" / "metrics.json").read_text())
    assert rec["curve"]["step"] == [0, 2, 4]
    assert rec["curve"]["pass@1"][0] == round(base["scores"]["pass@1"]["mean"], 5)
    assert rec["curve"]["pass@1"][-1] == round(final["scores"]["pass@1"]["mean"], 5)
    assert rec["signals"]["step"] == [1, 2, 3, 4] and len(rec["signals"]["label_accuracy"]) == 4
    assert (records[0].parent / rec["report"]).resolve() == (full_run.out / "report.md").resolve()


def test_report_has_the_comparison_table(full_run):
    report = (full_run.out / "report.md").read_text()
    assert "best step by majority ratio (label-free)" in report
    for method in METHODS:  # one sentence per method
        assert sum(line.startswith(f"- {display_name(method)}: pass@1 ") for line in report.splitlines()) == 1
    assert "](figures/synth_near__curves.png)" in report and (full_run.out / "figures" / "synth_near__curves.png").is_file()
    rows = {line.split("|")[1].strip() for line in report.splitlines() if line.startswith("|")}
    assert {"base", *METHODS} <= rows
    assert len(list((full_run.out / "base" / "records").glob("*.json"))) == 1


def test_rerun_does_not_retrain_or_resample(full_run, monkeypatch):
    assert full_run.rc == 0
    before = snapshot(full_run.out)

    def no_training(spec):
        raise AssertionError(f"retrained {spec.config['method']}")

    monkeypatch.setattr(train_module, "adapt", no_training)  # run() imports it when it runs
    start = time.monotonic()
    assert main(full_run.argv) == 0
    elapsed = time.monotonic() - start
    after = snapshot(full_run.out)
    for method in METHODS:
        for name in ("model/model.safetensors", "train_log.jsonl", "samples.jsonl"):
            key = f"{method}/{name}"
            assert after[key] == before[key], key
    assert after["base/samples.jsonl"] == before["base/samples.jsonl"]
    assert elapsed < 60, elapsed


def test_votes_beyond_samples_are_drawn_from_the_policy(tiny_model_dir, tmp_path, monkeypatch):
    calls = []
    real_bind = train_module.bind

    def spying_bind(reward, trainer, **kw):
        real_bind(reward, trainer, **kw)
        sampler = reward.extra_sampler

        def extra_sampler(prompts, count):
            texts = sampler(prompts, count)
            calls.append((len(prompts), count, [len(t) for t in texts]))
            return texts

        reward.extra_sampler = extra_sampler

    monkeypatch.setattr(train_module, "bind", spying_bind)
    out = tmp_path / "out"
    argv = run_argv(tiny_model_dir, out, "--limit", "4", "--steps", "2", "--eval-every", "2", "--votes", "6", "--methods", "ttrl")
    assert main(argv) == 0
    # one batched call per step for its 2 questions, each for votes - samples = 2 more completions
    assert calls == [(2, 2, [2, 2])] * 2
    questions = {json.loads(line)["question_id"] for line in (out / "base" / "samples.jsonl").read_text().splitlines()}
    assert len(questions) == 4
    train = step_rows(read_log(out / "ttrl"))
    assert [r["step"] for r in train] == [1, 2]
    for r in train:
        # each group's majority ratio is k/6 (votes), so the mean of two groups is a multiple of 1/12
        assert 12 * r["majority_ratio"] == pytest.approx(round(12 * r["majority_ratio"]))
        assert r["majority_ratio"] >= 1 / 6 or r["reward"] == 0.0
    rec = json.loads(next((out / "ttrl" / "records").glob("*.json")).read_text())
    assert (rec["method_config"]["votes"], rec["method_config"]["samples"]) == (6, 4)


def test_ctrl_c_leaves_a_run_that_resumes_from_its_checkpoint(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    steps = 6
    argv = run_argv(tiny_model_dir, out, "--limit", "4", "--steps", str(steps), "--eval-every", "2", "--save-every", "2",
                    "--votes", "4", "--lr", "1e-3", "--methods", "ttrl")
    ckpt = out / "ttrl" / "checkpoints"
    log = tmp_path / "stderr.txt"
    code = interrupt_cli(argv, tmp_path, (ckpt / "checkpoint-2" / "trainer_state.json").exists, log=log,
                         waiting_for="its first checkpoint", sig=signal.SIGINT)
    err = log.read_text()
    assert code == 130, err[-3000:]
    assert "re-run the same command to resume" in err
    assert not (out / "ttrl" / "model" / "ADAPTED").exists()
    kept = [r for r in read_log(out / "ttrl") if r["step"] <= 2]
    assert [r["step"] for r in step_rows(kept)] == [1, 2]

    # Ctrl-C may also land while a checkpoint is being written: such a half-written one must be skipped.
    complete = [p for p in ckpt.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    done = max(complete, key=lambda p: int(p.name.split("-")[1]))
    half = ckpt / f"checkpoint-{int(done.name.split('-')[1]) + 2}"
    if not half.exists():
        half.mkdir()
        (half / "config.json").write_bytes((done / "config.json").read_bytes())
    resumed_from = int(done.name.split("-")[1])

    assert main(argv) == 0
    rows = read_log(out / "ttrl")
    train = step_rows(rows)
    assert [r["step"] for r in train] == list(range(1, steps + 1))  # continuous, each step once
    # the steps up to the checkpoint are the interrupted run's own rows, not retrained
    assert [r for r in rows if r["step"] <= resumed_from] == [r for r in kept if r["step"] <= resumed_from]
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [2, 4]
    assert json.loads((out / "ttrl" / "model" / "ADAPTED").read_text())["steps"] == steps
    assert not ckpt.exists()  # removed once the model is saved
    assert len(list((out / "ttrl" / "records").glob("*.json"))) == 1


def test_unknown_method_is_one_line_and_exit_2(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(run_argv(tiny_model_dir, out, "--methods", "ttrl,majority-of-two")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("ttrl-bench: error: --methods: unknown method 'majority-of-two'")
    assert "ttrl" in err[0] and "leakage" in err[0]  # the known names are listed
    assert not out.exists()


def _measurement(pass1, ratio, pass4=None):
    p4 = pass1 if pass4 is None else pass4
    return SimpleNamespace(summary=Summary.from_dict({
        "num_questions": 1, "n": 4,
        "scores": {"pass@1": {"mean": pass1, "stderr": 0.0}, "maj@4": {"mean": pass1, "stderr": 0.0},
                   "pass@4": {"mean": p4, "stderr": 0.0}},
        "votes": {"ties": 0, "no_answer_samples": 0, "no_answer_questions": 0, "mean_majority_ratio": ratio},
        "lengths": {"mean_tokens": None, "truncation_rate": None},
    }))


def test_best_step_is_chosen_by_majority_ratio_never_by_true_labels():
    rows = [
        {"step": 1, "kind": "train", "reward": 0.2, "label_accuracy": 0.0, "reward_accuracy": 0.5},
        {"step": 2, "kind": "eval", "pass@1": 0.9, "maj@4": 0.9, "eval_majority_ratio": 0.3},
        {"step": 2, "kind": "train", "reward": 0.4, "label_accuracy": 1.0, "reward_accuracy": 0.7},
        {"step": 4, "kind": "eval", "pass@1": 0.1, "maj@4": 0.1, "eval_majority_ratio": 0.8},
        {"step": 4, "kind": "train", "reward": 0.5, "label_accuracy": 1.0, "reward_accuracy": 0.9},
        {"step": 6, "kind": "train", "train_runtime": 3.0},  # TRL's end-of-training summary
    ]
    s = train_summary(parse_rows(rows), "maj@4", _measurement(0.5, 0.6), final_step=6)
    assert (s["best_step"], s["best_step_pass@1"]) == (4, 0.1)  # not step 2, the best by pass@1
    assert "label-free" in s["best_criterion"]
    assert [e["step"] for e in s["evals"]] == [2, 4, 6]
    assert s["final_step"] == 6
    assert s["reward_accuracy_mean"] == pytest.approx(0.7)
    assert (s["label_accuracy_first"], s["label_accuracy_last"]) == (0.0, 1.0)
    # the final model wins when it is the most self-consistent; ties go to the later step
    assert train_summary(parse_rows(rows), "maj@4", _measurement(0.0, 0.8), final_step=6)["best_step"] == 6


def _eval(step, pass1, ratio, pass4, **kw):
    return {"step": step, "kind": "eval", "pass@1": pass1, "maj@4": pass1, "eval_majority_ratio": ratio, "pass@4": pass4, **kw}


def test_a_best_step_with_the_collapse_signature_is_flagged_not_presented_as_best():
    # the base: ratio 0.4, pass@4 0.8; step 4 agrees with itself more (0.9) but solves less (pass@4 0.3)
    rows = [_eval(2, 0.5, 0.6, 0.8), _eval(4, 0.3, 0.9, 0.3)]
    s = train_summary(parse_rows(rows), "maj@4", _measurement(0.3, 0.85, 0.3), final_step=6, start=_measurement(0.4, 0.4, 0.8))
    assert s["best_step"] == 4
    assert "collapse" in s["collapse_warning"] and "0.800 -> 0.300" in s["collapse_warning"]
    # rising agreement with pass@4 kept: no warning
    rows = [_eval(2, 0.5, 0.6, 0.8), _eval(4, 0.6, 0.9, 0.85)]
    s = train_summary(parse_rows(rows), "maj@4", _measurement(0.6, 0.85, 0.85), final_step=6, start=_measurement(0.4, 0.4, 0.8))
    assert (s["best_step"], s["collapse_warning"]) == (4, None)


def test_the_final_point_of_another_backend_never_competes_with_the_hf_probes():
    # vllm measured the final model; the probe (hf) took steps 0, 3 and 6: the best is chosen among hf points only
    rows = [_eval(0, 0.4, 0.3, 0.8, backend="hf"), _eval(3, 0.5, 0.5, 0.8, backend="hf"), _eval(6, 0.6, 0.6, 0.9, backend="hf")]
    s = train_summary(parse_rows(rows), "maj@4", _measurement(0.6, 0.99, 0.9), final_step=6, backend="vllm")
    assert s["best_step"] == 6 and s["best_step_pass@1"] == 0.6  # the hf probe of step 6, not vllm's 0.99 ratio
    assert [(e["step"], e["backend"]) for e in s["evals"]] == [(0, "hf"), (3, "hf"), (6, "hf"), (6, "vllm")]
    assert (s["probe_backend"], s["final_backend"]) == ("hf", "vllm")
    assert "hf-sampled" in s["best_criterion"]
