"""Adaptation of a bf16 checkpoint: fp32 master weights (one step at the paper's lr 5e-7 moves
nearly every weight, where pure bf16 training rounds most updates away), the adapted model
saved in the checkpoint's dtype, and LoRA through TRL's peft_config saved merged."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from ttrl_bench.adapt import train as train_module
from ttrl_bench.adapt.config import TINY
from ttrl_bench.adapt.train import AdaptSpec, adapt
from ttrl_bench.types import SamplingParams

PAPER_LR = 5e-7


@pytest.fixture(scope="module")
def bf16_model_dir(tiny_model_dir, tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("bf16_model")
    AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


def _spec(model_dir, out, **cfg):
    # the random control: its rewards differ within a group, so every step has a gradient
    config = replace(TINY, method="random", steps=1, prompts_per_step=2, samples=4, votes=4, eval_every=5, **cfg)
    params = SamplingParams(n=2, temperature=1.0, top_p=1.0, max_new_tokens=4, seed=0)
    return AdaptSpec(task="synth_near", model_dir=str(model_dir), out_dir=str(out), config=config,
                     eval_sampling=params, chat_template=False, limit=2)


def test_one_step_at_the_paper_lr_changes_a_bf16_checkpoints_weights(bf16_model_dir, tmp_path, monkeypatch):
    seen = {}
    real_save = train_module.save_adapted

    def inspecting_save(trainer, spec, cfg, dtype, processes):
        seen["params"] = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
        return real_save(trainer, spec, cfg, dtype, processes)

    monkeypatch.setattr(train_module, "save_adapted", inspecting_save)
    model_out = adapt(_spec(bf16_model_dir, tmp_path / "out", learning_rate=PAPER_LR), progress=False)

    base = load_file(bf16_model_dir / "model.safetensors")
    trained = seen["params"]
    assert {v.dtype for v in trained.values()} == {torch.float32}  # fp32 master weights
    changed = total = lost_in_bf16 = 0
    for name, w in trained.items():
        b = base[name].float()
        changed += (w != b).sum().item()
        total += w.numel()
        # what pure bf16 training would have kept of this update: the step rounded to bf16
        lost_in_bf16 += ((w != b) & (w.to(torch.bfloat16).float() == b)).sum().item()
    assert changed / total > 0.9, changed / total
    assert lost_in_bf16 / total > 0.5  # most of the step is below half a bf16 ulp: a no-op in bf16

    # saved like the base checkpoint (bf16), so base and adapted model are sampled alike
    saved = load_file(model_out / "model.safetensors")
    assert {v.dtype for v in saved.values()} == {torch.bfloat16}
    assert json.loads((model_out / "ADAPTED").read_text())["dtype"] == "bfloat16"


def test_lora_trains_an_adapter_and_saves_the_merged_model(bf16_model_dir, tmp_path, monkeypatch):
    dtypes = {}
    real_save = train_module.save_adapted

    def inspecting_save(trainer, spec, cfg, dtype, processes):
        for name, p in trainer.model.named_parameters():
            dtypes.setdefault(("adapter" if "lora_" in name else "base", p.requires_grad), set()).add(p.dtype)
        return real_save(trainer, spec, cfg, dtype, processes)

    monkeypatch.setattr(train_module, "save_adapted", inspecting_save)
    model_out = adapt(_spec(bf16_model_dir, tmp_path / "out", learning_rate=1e-2, lora_r=4, lora_targets="q_proj,v_proj"),
                      progress=False)
    base = load_file(bf16_model_dir / "model.safetensors")
    merged = load_file(model_out / "model.safetensors")
    assert merged.keys() == base.keys()  # a plain checkpoint: no lora_A/lora_B, no adapter config
    assert not (model_out / "adapter_config.json").exists()
    moved = {k for k in base if not torch.equal(base[k], merged[k])}
    assert moved and all(k.endswith(("q_proj.weight", "v_proj.weight")) for k in moved), sorted(moved)
    assert json.loads((model_out / "ADAPTED").read_text())["lora_r"] == 4
    # only the adapter trains, in fp32; the frozen base stays in the checkpoint's bf16
    assert dtypes == {("adapter", True): {torch.float32}, ("base", False): {torch.bfloat16}}
