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

from ttrl_bench.adapt.callbacks import LogCallback, ProbeCallback, ProgressCallback
from ttrl_bench.adapt.config import AdaptConfig, grpo_config, peft_config
from ttrl_bench.adapt.policy import bind
from ttrl_bench.adapt.probe import PROBE_BACKEND, sharded_probe
from ttrl_bench.adapt.reward import GroupReward, ProgressSettings
from ttrl_bench.adapt.train_log import TrainLog
from ttrl_bench.data import load_questions
from ttrl_bench.data.split import adapted_questions, split_ids
from ttrl_bench.errors import UsageError
from ttrl_bench.grading import Grader
from ttrl_bench.tasks import get_task
from ttrl_bench.types import SamplingParams


@dataclass(frozen=True)
class AdaptSpec:
    """Everything one adaptation needs, as typed data; written to ``spec.json`` (JSON, never pickle) for
    worker processes, which read it back with ``read``."""

    task: str
    model_dir: str
    out_dir: str
    config: AdaptConfig
    eval_sampling: SamplingParams  # how the probe measures the test set
    chat_template: bool
    data: str | None = None
    limit: int | None = None
    trust_remote_code: bool = False
    grading_timeout: float = 5.0
    lm_eval_include_path: str | None = None  # --task lm_eval:NAME: lm-eval task YAMLs outside its registry
    # run --holdout: hold out this share of the questions (split by data.split.split_ids); None = train on all
    holdout_fraction: float | None = None
    holdout_seed: int = 0
    backend: str = PROBE_BACKEND  # the run's --backend: measures base and final model (the probe uses hf)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> "AdaptSpec":
        data = json.loads(Path(path).read_text())
        return cls(**{**data, "config": AdaptConfig(**data["config"]),
                      "eval_sampling": SamplingParams(**data["eval_sampling"])})


def last_checkpoint(directory: Path) -> tuple[str | None, int]:
    """The newest complete checkpoint and its step. The Trainer writes trainer_state.json last,
    so a checkpoint without a readable one was cut short (Ctrl-C mid-save) and is skipped; one
    that has it but whose other files are damaged is a UsageError (resuming would crash or lie)."""
    if not directory.is_dir():
        return None, 0
    found: list[tuple[int, Path]] = []
    for path in directory.glob("checkpoint-*"):
        try:
            state = json.loads((path / "trainer_state.json").read_text())
            step = int(state["global_step"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.append((step, path))
    if not found:
        return None, 0
    step, ckpt = max(found)
    _check_checkpoint(ckpt)
    return str(ckpt), step


def _check_checkpoint(ckpt: Path) -> None:
    from safetensors import SafetensorError, safe_open

    def damaged(why: str) -> UsageError:
        return UsageError(f"{ckpt}: damaged checkpoint ({why}); delete it to restart this method from its previous checkpoint")

    for name in ("optimizer.pt", "scheduler.pt"):
        if not (ckpt / name).is_file():
            raise damaged(f"no {name}")
    weights = sorted(ckpt.glob("*.safetensors"))
    if not weights:
        raise damaged("no model.safetensors")
    for w in weights:
        try:
            with safe_open(str(w), "pt") as fh:  # reads the header, checks it against the file size
                for key in list(fh.keys())[:1]:
                    fh.get_slice(key)
        except (SafetensorError, OSError, ValueError) as exc:
            raise damaged(f"{w.name}: {exc}") from None


def _replay_sampler_epochs(trainer, epochs: int) -> None:
    """Resume with the data order of an uninterrupted run.

    TRL's RepeatSampler draws each epoch's permutation from one torch.Generator seeded once, so
    epoch e's order depends on the e permutations drawn before it. transformers' resume skips the
    finished epochs without iterating the sampler, so a run resumed in epoch e >= 1 trains on epoch
    0's order again. TRL has no hook for this; we wrap the trainer's sampler factory (on this
    instance only) to draw and discard those permutations first.
    """
    if epochs <= 0:
        return
    make_sampler = trainer._get_train_sampler

    def sampler_at_epoch(*args, **kwargs):
        sampler = make_sampler(*args, **kwargs)
        generator = getattr(sampler, "generator", None)
        if getattr(sampler, "shuffle", False) and generator is not None:
            for _ in range(epochs):
                torch.randperm(sampler.num_samples, generator=generator)
        return sampler

    trainer._get_train_sampler = sampler_at_epoch


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
    out = Path(spec.out_dir)
    staging = out / "model.staging"
    trainer.save_model(str(staging))
    if trainer.accelerator.is_main_process:
        _write_model(staging, spec, cfg, dtype, trainer.processing_class,
                     {"processes": processes, "distributed": str(trainer.accelerator.distributed_type.value)})
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return out / "model"


def _write_model(saved: Path, spec: AdaptSpec, cfg: AdaptConfig, dtype: torch.dtype, tokenizer, where: dict) -> None:
    """``model/`` from what a trainer saved (a staging directory or a checkpoint: the same files), in the
    checkpoint's dtype, LoRA merged; ``ADAPTED`` is written last and marks the model complete."""
    from transformers import AutoModelForCausalLM

    final = Path(spec.out_dir) / "model"
    kw = {"dtype": dtype, "trust_remote_code": spec.trust_remote_code}
    if cfg.lora_r:
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(spec.model_dir, **kw)
        model = PeftModel.from_pretrained(base, str(saved)).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(str(saved), **kw)
    shutil.rmtree(final, ignore_errors=True)
    model.save_pretrained(str(final), safe_serialization=True)
    tokenizer.save_pretrained(str(final))
    info = {"method": cfg.method, "steps": cfg.steps, **where, "dtype": str(dtype).removeprefix("torch."),
            "lora_r": cfg.lora_r}
    (final / "ADAPTED").write_text(json.dumps(info, sort_keys=True) + "\n")


def adapt(spec: AdaptSpec, *, progress: bool = True) -> Path:
    """Train, save the adapted model to ``out_dir/model``; returns that path. Resumes from checkpoints.

    The process environment is restored afterwards: TRL's colocated vLLM (``--use-vllm``) sets
    RANK, WORLD_SIZE, MASTER_ADDR/PORT and vLLM turns its engine multiprocessing off for the
    process; the next method, the final measurement and any subprocess must not inherit that
    (a later ``--backend vllm`` engine would run in-process and a launch would think it is rank 0
    of a distributed job).
    """
    saved = dict(os.environ)
    try:
        return _adapt(spec, progress=progress)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _adapt(spec: AdaptSpec, *, progress: bool) -> Path:
    from accelerate import PartialState
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    cfg = spec.config
    cfg.validate()
    task = get_task(spec.task, lm_eval_include_path=spec.lm_eval_include_path)
    questions = load_questions(task, data_path=spec.data, limit=spec.limit, trust_remote_code=spec.trust_remote_code)
    if spec.holdout_fraction is not None:
        # Held-out questions never reach the trainer: not its dataset (so neither the reward function nor
        # the rollouts), nor the probe whose majority ratio picks the label-free best step.
        questions = adapted_questions(questions, split_ids([q.id for q in questions], spec.holdout_fraction, spec.holdout_seed))
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

    dataset = Dataset.from_list([{"prompt": prompt_of(q), "reference": q.reference, "question_id": q.id,
                                  "until": json.dumps(q.meta.get("until") or [])} for q in questions])
    tokenizer = AutoTokenizer.from_pretrained(spec.model_dir, trust_remote_code=spec.trust_remote_code)
    # fp32 master weights on every backend: a bf16 checkpoint trained in bf16 drops most updates
    # at lr 5e-7 (an update below half a bf16 ulp of the weight rounds away). On GPU the
    # forward runs in bf16 autocast (GRPOConfig bf16=True), as TRL recommends.
    checkpoint_dtype = _checkpoint_dtype(spec.model_dir, spec.trust_remote_code)
    # With LoRA the frozen base stays in the checkpoint's dtype (a 7B model in fp32 would not fit
    # one GPU); peft keeps the trained adapter weights in fp32 (autocast_adapter_dtype).
    load_dtype = checkpoint_dtype if cfg.lora_r else torch.float32
    model = AutoModelForCausalLM.from_pretrained(spec.model_dir, dtype=load_dtype, trust_remote_code=spec.trust_remote_code)
    ckpt, resume_step = last_checkpoint(out / "checkpoints")
    log = TrainLog(out / "train_log.jsonl", resume_step)
    if ckpt is not None and resume_step >= cfg.steps:
        # The target step is trained (killed after its checkpoint, before the model was saved): the
        # checkpoint's weights are the model; training again would go past the target.
        state = PartialState(cpu=not cuda)
        if state.is_main_process:
            _write_model(Path(ckpt), spec, cfg, checkpoint_dtype, tokenizer,
                         {"processes": processes, "distributed": str(state.distributed_type.value)})
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
        state.wait_for_everyone()
        return out / "model"
    eval_params = spec.eval_sampling
    maj_key = f"maj@{eval_params.n}"

    state = PartialState()
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", processes))
    with Grader(timeout_seconds=spec.grading_timeout, workers=grader_workers(local_processes)) as grader:
        reward = GroupReward(
            cfg.method, answer_type=task.answer_type, grader=grader, group_size=cfg.samples,
            votes=cfg.votes, seed=cfg.seed, rank=state.process_index,
            progress=ProgressSettings(task.budget, cfg.progress_weight, cfg.progress_answers),
        )
        holder: dict = {}

        def probe():
            return sharded_probe(
                holder["trainer"], questions, eval_params, answer_type=task.answer_type,
                chat_template=spec.chat_template, grader=grader, tokenizer=tokenizer,
            )

        def report(metrics: dict) -> None:
            # transformers' Trainer.log, not GRPOTrainer.log: the latter would flush the step's pending
            # training metrics into this entry. Reporters (--report-to) and the state's log history get it.
            # It runs in on_step_end, before the step's own log: CallbackHandler.on_log clears
            # control.should_log, which would cancel that log, so the flag is put back.
            from transformers import Trainer

            trainer = holder["trainer"]
            should_log = trainer.control.should_log
            Trainer.log(trainer, metrics)
            trainer.control.should_log = should_log

        # The final model is measured by the caller with --backend, by the same code as the base
        # model. When that backend is not the probe's, the probe also takes step 0 and the last
        # step, so the label-free best step is chosen among points of one sampler.
        same = spec.backend == PROBE_BACKEND
        probe_cb = ProbeCallback(log, cfg.eval_every, probe, maj_key, skip_last=same, at_start=not same, report=report)
        # read by transformers' TensorBoardCallback when it is built; adapt() restores the environment after
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "tensorboard")
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
        if ckpt is not None:
            # Steps per epoch as the Trainer counts them: RepeatSampler keeps whole batches of
            # prompts_per_step questions; grpo_config fixes gradient accumulation and
            # steps_per_generation at 1, so one batch is one optimisation step.
            _replay_sampler_epochs(trainer, resume_step // max(1, len(dataset) // cfg.prompts_per_step))
        trainer.train(resume_from_checkpoint=ckpt)
        return save_adapted(trainer, spec, cfg, checkpoint_dtype, processes)

