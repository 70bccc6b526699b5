"""AdaptConfig: validation naming the flag, its translation into TRL's GRPOConfig, the group
layout guard, and how ``ttrl-bench run`` resolves flags against the tiny and paper profiles."""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from ttrl_bench.adapt.config import (
    PAPER, TINY, AdaptConfig, check_group_layout, grpo_config, paper_steps, per_device_batch, with_overrides,
)
from ttrl_bench.cli.adapt_flags import add_adapt_flags, run_config_from_args
from ttrl_bench.pipeline.config import EvalConfig
from ttrl_bench.pipeline.run import resolve_adapt
from ttrl_bench.errors import UsageError
from ttrl_bench.demo import EMBEDDED_MODEL


@pytest.mark.parametrize("override, flag", [
    ({"steps": 0}, "--steps"),
    ({"prompts_per_step": 0}, "--prompts-per-step"),
    ({"samples": 1, "votes": 1}, "--samples"),
    ({"samples": 8, "votes": 4}, "--votes"),
    ({"learning_rate": 0.0}, "--lr"),
    ({"eval_every": 0}, "--eval-every"),
    ({"max_new_tokens": 0}, "--train-max-new-tokens"),
    ({"temperature": 0.0}, "--train-temperature"),
])
def test_validate_names_the_flag(override, flag):
    with pytest.raises(UsageError) as err:
        AdaptConfig(**override).validate()
    assert str(err.value).startswith(f"{flag}:")


def test_the_shipped_profiles_are_valid():
    TINY.validate()
    replace(PAPER, steps=1).validate()  # steps=0 there means "the paper's epochs", resolved per task
    assert (PAPER.votes, PAPER.samples, PAPER.prompts_per_step) == (64, 32, 8)


def test_grpo_config_carries_the_adapt_config(tmp_path):
    cfg = AdaptConfig(
        steps=10, prompts_per_step=4, samples=4, votes=8, learning_rate=3e-5, lr_scheduler="cosine",
        warmup_ratio=0.1, beta=0.01, temperature=0.7, top_p=0.9, top_k=5, max_new_tokens=12, eval_every=5, save_every=3, seed=7,
    )
    args = grpo_config(cfg, str(tmp_path / "ckpt"), processes=2, use_cpu=True, bf16=False)
    assert args.num_generations == 4  # the gradient step's group is --samples, not --votes
    assert args.per_device_train_batch_size == 4 // 2 * 4
    assert args.steps_per_generation == 1 and args.gradient_accumulation_steps == 1
    assert args.per_device_train_batch_size * args.steps_per_generation % args.num_generations == 0
    assert args.max_steps == 10 and args.save_steps == 3 and args.logging_steps == 1
    assert args.max_completion_length == 12
    assert (args.temperature, args.top_p, args.top_k) == (0.7, 0.9, 5)
    assert (args.learning_rate, args.beta, args.seed) == (3e-5, 0.01, 7)
    assert args.lr_scheduler_type == "cosine" and args.warmup_steps == 1  # ceil(0.1 * 10)
    assert args.use_cpu and not args.bf16
    assert not args.remove_unused_columns  # the reward function needs the "reference" column
    assert args.output_dir == str(tmp_path / "ckpt")


@pytest.mark.parametrize("prompts, processes, samples, per_device", [(4, 1, 4, 16), (4, 2, 4, 8), (6, 3, 2, 4), (8, 8, 3, 3)])
def test_per_device_batch_is_whole_questions(prompts, processes, samples, per_device):
    cfg = AdaptConfig(prompts_per_step=prompts, samples=samples, votes=samples)
    assert per_device_batch(cfg, processes) == per_device


@pytest.mark.parametrize("prompts, processes", [(3, 2), (4, 3), (1, 2)])
def test_prompts_not_divisible_by_processes_is_a_usage_error(tmp_path, prompts, processes):
    cfg = AdaptConfig(prompts_per_step=prompts, samples=4, votes=4)
    with pytest.raises(UsageError, match=rf"^--prompts-per-step: {prompts} is not divisible by the {processes} processes"):
        grpo_config(cfg, str(tmp_path), processes=processes, use_cpu=True, bf16=False)


@pytest.mark.parametrize("per_device, steps_per_generation, group", [(6, 1, 4), (2, 1, 4), (3, 3, 2), (5, 1, 16)])
def test_group_layout_refuses_a_split_group(per_device, steps_per_generation, group):
    with pytest.raises(UsageError, match="split across processes") as err:
        check_group_layout(per_device, steps_per_generation, group, processes=2)
    assert f"{per_device * steps_per_generation} completions" in str(err.value)
    assert str(err.value).startswith("--prompts-per-step/--samples:")


@pytest.mark.parametrize("per_device, steps_per_generation, group", [(8, 1, 4), (2, 2, 4), (6, 2, 4), (16, 1, 16)])
def test_group_layout_accepts_whole_groups(per_device, steps_per_generation, group):
    assert check_group_layout(per_device, steps_per_generation, group, processes=2) is None


def test_the_spec_reaches_a_worker_typed_through_json(tmp_path):
    from ttrl_bench.adapt.train import AdaptSpec
    from ttrl_bench.types import SamplingParams

    spec = AdaptSpec(task="synth_near", model_dir="m", out_dir="o", config=replace(TINY, method="leakage", lora_alpha=8.0),
                     eval_sampling=SamplingParams(n=4, temperature=0.7, top_p=0.9, max_new_tokens=8, seed=3, top_k=5),
                     chat_template=False, holdout_fraction=0.25)
    spec.write(tmp_path / "spec.json")
    assert json.loads((tmp_path / "spec.json").read_text())["config"]["method"] == "leakage"  # plain JSON on disk
    again = AdaptSpec.read(tmp_path / "spec.json")
    assert again == spec and isinstance(again.config, AdaptConfig) and isinstance(again.eval_sampling, SamplingParams)


def test_with_overrides_keeps_unset_fields():
    cfg = with_overrides(TINY, steps=7, samples=None, learning_rate=None, seed=3)
    assert cfg == replace(TINY, steps=7, seed=3)


def test_paper_steps_follow_the_papers_epochs():
    assert paper_steps("aime24", 30, 8) == 300  # 80 epochs of 30 questions, 8 a step
    assert paper_steps("amc23", 83, 8) == 312  # 30 epochs: ceil(2490 / 8)
    assert paper_steps("gsm8k", 5, 8) == 7  # other tasks: 10 epochs
    assert paper_steps("math500", 1, 8) == 2


# --- flag resolution in ``ttrl-bench run`` ----------------------------------------------------

def _args(argv):
    """The RunConfig the CLI makes of these flags (what ``resolve_adapt`` receives)."""
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    add_adapt_flags(p)
    ns = p.parse_args(argv)
    return run_config_from_args(ns, EvalConfig(seed=ns.seed))


def _prep(model_dir, *, task="gsm8k", questions=20, max_new_tokens=256):
    return SimpleNamespace(
        model_dir=Path(model_dir), task=SimpleNamespace(name=task), questions=[None] * questions,
        params=SimpleNamespace(max_new_tokens=max_new_tokens),
    )


def test_a_real_model_gets_the_papers_recipe(tmp_path):
    cfg = resolve_adapt(_args([]), _prep(tmp_path, task="aime24", questions=30, max_new_tokens=3072))
    assert (cfg.samples, cfg.votes, cfg.prompts_per_step) == (32, 64, 8)
    assert (cfg.learning_rate, cfg.lr_scheduler, cfg.beta) == (5e-7, "cosine", 0.001)
    assert cfg.steps == 300 and cfg.max_new_tokens == 3072


def test_the_embedded_model_gets_the_tiny_profile():
    cfg = resolve_adapt(_args([]), _prep(EMBEDDED_MODEL))
    assert cfg == TINY


def test_flags_override_the_profile(tmp_path):
    cfg = resolve_adapt(
        _args(["--steps", "5", "--samples", "4", "--votes", "6", "--prompts-per-step", "2", "--lr", "1e-4",
               "--train-temperature", "0.6", "--train-max-new-tokens", "9", "--eval-every", "2", "--seed", "3"]),
        _prep(tmp_path),
    )
    assert (cfg.steps, cfg.samples, cfg.votes, cfg.prompts_per_step) == (5, 4, 6, 2)
    assert (cfg.learning_rate, cfg.temperature, cfg.max_new_tokens, cfg.eval_every, cfg.seed) == (1e-4, 0.6, 9, 2, 3)


def test_samples_without_votes_keep_the_profiles_ratio(tmp_path):
    # the paper's profile votes with 64 and trains on 32: --samples 80 alone means 160 votes
    cfg = resolve_adapt(_args(["--samples", "80", "--steps", "1"]), _prep(tmp_path))
    assert cfg.votes == 160
    with pytest.raises(UsageError, match="^--votes:"):
        resolve_adapt(_args(["--samples", "80", "--votes", "40", "--steps", "1"]), _prep(tmp_path))


@pytest.mark.parametrize("argv, flag", [
    (["--processes", "0"], "--processes"),
    (["--prompts-per-step", "3", "--processes", "2"], "--prompts-per-step"),
    (["--steps", "-1"], "--steps"),
])
def test_resolution_refuses_bad_flags_before_anything_runs(tmp_path, argv, flag):
    with pytest.raises(UsageError) as err:
        resolve_adapt(_args(argv), _prep(tmp_path))
    assert str(err.value).startswith(f"{flag}:")
