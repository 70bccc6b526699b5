"""Adapt one model with one method: TRL's GRPOTrainer with a ttrl-bench reward function.

Runs in the ``ttrl-bench run`` process, or in each process of ``accelerate launch``
(``python -m ttrl_bench.adapt.worker SPEC``) for several GPUs or CPU processes.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ttrl_bench.adapt.callbacks import LogCallback, ProbeCallback, ProgressCallback, TrainLog
from ttrl_bench.adapt.config import AdaptConfig, grpo_config, peft_config
from ttrl_bench.adapt.policy import bind
from ttrl_bench.adapt.probe import PROBE_BACKEND, sharded_probe
from ttrl_bench.adapt.reward import GroupReward
from ttrl_bench.data import load_questions
from ttrl_bench.grading import Grader
from ttrl_bench.tasks import get_task
from ttrl_bench.types import SamplingParams


@dataclass(frozen=True)
class AdaptSpec:
    """Everything one adaptation needs, as plain data (written to ``spec.json`` for worker processes)."""

    task: str
    model_dir: str
    out_dir: str
    config: dict  # AdaptConfig as a dict
    eval_sampling: dict  # SamplingParams as a dict
    chat_template: bool
    data: str | None = None
    limit: int | None = None
    trust_remote_code: bool = False
    grading_timeout: float = 5.0
    backend: str = PROBE_BACKEND  # the run's --backend: measures base and final model (the probe uses hf)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> "AdaptSpec":
        return cls(**json.loads(Path(path).read_text()))


def _last_checkpoint(directory: Path) -> tuple[str | None, int]:
    """The newest complete checkpoint and its step. The Trainer writes trainer_state.json last,
    so a checkpoint without a readable one was cut short (Ctrl-C mid-save) and is skipped."""
    if not directory.is_dir():
        return None, 0
    found: list[tuple[int, str]] = []
    for path in directory.glob("checkpoint-*"):
        try:
            state = json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        found.append((int(state["global_step"]), str(path)))
    if not found:
        return None, 0
    step, ckpt = max(found)
    return ckpt, step


def grader_workers(local_processes: int) -> int:
    """Math-verify workers per training process: the cores shared by the node's processes
    (one Grader per process; processes x cores workers would oversubscribe a GPU node)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, local_processes))


def _checkpoint_dtype(model_dir: str, trust_remote_code: bool) -> torch.dtype:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def save_adapted(trainer, spec: AdaptSpec, cfg: AdaptConfig, dtype: torch.dtype, processes: int) -> Path:
    """The adapted model as a plain checkpoint in the base checkpoint's dtype (LoRA merged),
    then the training checkpoints are removed: resume never needs them once the model is saved.

    Every process calls it (saving gathers sharded parameters). The trainer first saves what
    it holds (fp32 master weights, or the LoRA adapter) to a staging directory; the main
    process reloads that in the checkpoint's dtype, merges an adapter, and writes ``model/``.
    """
    from transformers import AutoModelForCausalLM

    out = Path(spec.out_dir)
    staging, final = out / "model.staging", out / "model"
    trainer.save_model(str(staging))
    if trainer.accelerator.is_main_process:
        kw = {"dtype": dtype, "trust_remote_code": spec.trust_remote_code}
        if cfg.lora_r:
            from peft import PeftModel

            base = AutoModelForCausalLM.from_pretrained(spec.model_dir, **kw)
            model = PeftModel.from_pretrained(base, str(staging)).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(str(staging), **kw)
        shutil.rmtree(final, ignore_errors=True)
        model.save_pretrained(str(final), safe_serialization=True)
        trainer.processing_class.save_pretrained(str(final))
        info = {"method": cfg.method, "steps": cfg.steps, "processes": processes, "dtype": str(dtype).removeprefix("torch."),
                "lora_r": cfg.lora_r, "distributed": str(trainer.accelerator.distributed_type.value)}
        (final / "ADAPTED").write_text(json.dumps(info) + "\n")  # last: marks the model complete
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return final


def adapt(spec: AdaptSpec, *, progress: bool = True) -> Path:
    """Train, save the adapted model to ``out_dir/model``; returns that path. Resumes from checkpoints."""
    from accelerate import PartialState
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    cfg = AdaptConfig(**spec.config)
    cfg.validate()
    task = get_task(spec.task)
    questions = load_questions(task, data_path=spec.data, limit=spec.limit, trust_remote_code=spec.trust_remote_code)
    out = Path(spec.out_dir)
    cuda = torch.cuda.is_available()
    # cpu=True matters: without it accelerate sees a single process on a machine without CUDA
    # even under torchrun, and each process would take the whole step's batch.
    processes = PartialState(cpu=not cuda).num_processes
    args = grpo_config(
        cfg, str(out / "checkpoints"), processes=processes, use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
    )

    def prompt_of(q):
        return [{"role": "user", "content": q.prompt}] if spec.chat_template else q.prompt

    dataset = Dataset.from_list([{"prompt": prompt_of(q), "reference": q.reference, "question_id": q.id} for q in questions])
    tokenizer = AutoTokenizer.from_pretrained(spec.model_dir, trust_remote_code=spec.trust_remote_code)
    # fp32 master weights on every backend: a bf16 checkpoint trained in bf16 drops most updates
    # at lr 5e-7 (an update below half a bf16 ulp of the weight rounds away). On GPU the
    # forward runs in bf16 autocast (GRPOConfig bf16=True), as TRL recommends.
    checkpoint_dtype = _checkpoint_dtype(spec.model_dir, spec.trust_remote_code)
    # With LoRA the frozen base stays in the checkpoint's dtype (a 7B model in fp32 would not fit
    # one GPU); peft keeps the trained adapter weights in fp32 (autocast_adapter_dtype).
    load_dtype = checkpoint_dtype if cfg.lora_r else torch.float32
    model = AutoModelForCausalLM.from_pretrained(spec.model_dir, dtype=load_dtype, trust_remote_code=spec.trust_remote_code)
    ckpt, resume_step = _last_checkpoint(out / "checkpoints")
    log = TrainLog(out / "train_log.jsonl", resume_step)
    eval_params = SamplingParams(**spec.eval_sampling)
    maj_key = f"maj@{eval_params.n}"

    state = PartialState()
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", processes))
    with Grader(timeout_seconds=spec.grading_timeout, workers=grader_workers(local_processes)) as grader:
        reward = GroupReward(
            cfg.method, answer_type=task.answer_type, grader=grader, group_size=cfg.samples,
            votes=cfg.votes, seed=cfg.seed, rank=state.process_index,
        )
        holder: dict = {}

        def probe():
            return sharded_probe(
                holder["trainer"], questions, eval_params, answer_type=task.answer_type,
                chat_template=spec.chat_template, grader=grader, tokenizer=tokenizer,
            )

        # The final model is measured by the caller with --backend, by the same code as the base
        # model. When that backend is not the probe's, the probe also takes step 0 and the last
        # step, so the label-free best step is chosen among points of one sampler.
        same = spec.backend == PROBE_BACKEND
        probe_cb = ProbeCallback(log, cfg.eval_every, probe, maj_key, skip_last=same, at_start=not same)
        trainer = GRPOTrainer(
            model=model, reward_funcs=[reward], args=args, train_dataset=dataset,
            processing_class=tokenizer, callbacks=[LogCallback(log), probe_cb], peft_config=peft_config(cfg),
        )
        holder["trainer"] = trainer
        # transformers' own progress callback prints every log dict; ours shows one bar with the diagnostics.
        from transformers.trainer_callback import PrinterCallback, ProgressCallback as HFProgress

        trainer.remove_callback(HFProgress)
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(ProgressCallback(f"{cfg.method}: adapting"))
        bind(reward, trainer, seed=cfg.seed, rank=state.process_index)
        trainer.train(resume_from_checkpoint=ckpt)
        return save_adapted(trainer, spec, cfg, checkpoint_dtype, processes)
