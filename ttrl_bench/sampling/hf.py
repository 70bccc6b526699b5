"""The ``hf`` backend: transformers ``generate`` on CPU or GPU, batched with left padding.

Sampling draws each prompt's tokens from its own ``torch.Generator`` seeded with
``prompt_seed(params.seed, prompt index)`` (the vllm backend's per-request seeds).
``generate`` alone draws from one global stream shared by the whole batch, which
would make a prompt's samples depend on which other prompts share its batch.
"""
from __future__ import annotations

import copy

from pathlib import Path
from typing import Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LogitsProcessor, LogitsProcessorList
from transformers.generation import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from ttrl_bench.errors import UsageError
from ttrl_bench.sampling.base import (
    LoadOptions, check_params, config_bos_token_id, encode_prompts, prompt_seed, replicate_greedy,
)
from ttrl_bench.types import Completion, SamplingParams

# Sequences per generate call. On GPU the KV cache of long samples is the limit;
# on CPU generate's per-step Python overhead dominates for small models, so wider
# batches pay (measured on the tiny model: 256 rows in one call 4.9 s, in four
# calls of 64 rows 16.4 s), and RAM is plentiful.
DEFAULT_BATCH_SEQUENCES = {"cuda": 64, "cpu": 256}


class _SeededDraw(LogitsProcessor):
    """Samples the next token of each row with its prompt's generator; returns a one-hot score.

    ``generate`` then samples from a distribution with all mass on that token, so
    its own (global) random stream cannot change the outcome. Temperature, top-k and
    top-p are applied with transformers' own warpers.
    """

    def __init__(self, params: SamplingParams, seeds: list[int], n: int, device: torch.device):
        warpers = []
        if params.temperature != 1.0:
            warpers.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k > 0:
            warpers.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            warpers.append(TopPLogitsWarper(params.top_p))
        self.warpers = LogitsProcessorList(warpers)
        self.n = n
        self.generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = torch.softmax(self.warpers(input_ids, scores), dim=-1)
        # Exponential race: argmax(p / E) with E ~ Exp(1) is a draw from p and
        # always consumes one number per vocabulary entry, so a generator's stream
        # stays aligned whatever its rows sampled before.
        race = torch.empty_like(probs)
        for k, gen in enumerate(self.generators):
            race[k * self.n : (k + 1) * self.n].exponential_(generator=gen)
        chosen = (probs / race).argmax(dim=-1, keepdim=True)
        one_hot = torch.full_like(scores, float("-inf"))
        return one_hot.scatter_(1, chosen, 0.0)


class HFSampler:
    backend = "hf"

    def __init__(self, model_dir: Path, load: LoadOptions = LoadOptions()):
        try:
            self.device = torch.device(load.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        except RuntimeError:
            raise UsageError(f"--device: unknown device {load.device!r}; expected e.g. cpu, cuda, cuda:1") from None
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=load.trust_remote_code)
        torch_dtype = load.dtype if load.dtype == "auto" else getattr(torch, load.dtype)
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=torch_dtype, trust_remote_code=load.trust_remote_code
        ).to(self.device)
        model.eval()
        self._setup(model, tokenizer, load.batch_size, load.add_bos)

    @classmethod
    def from_model(cls, model, tokenizer, *, batch_size: int | None = None, add_bos: bool | None = None) -> "HFSampler":
        """Sample from a model already in memory (the policy during adaptation); the caller sets eval mode."""
        self = cls.__new__(cls)
        self.device = model.device
        self._setup(model, tokenizer, batch_size, add_bos)
        return self

    def _setup(self, model, tokenizer, batch_size: int | None, add_bos: bool | None) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.add_bos, self.model_bos_id = add_bos, config_bos_token_id(model.config)
        self.batch_sequences = batch_size or DEFAULT_BATCH_SEQUENCES.get(self.device.type, 64)
        self.stop_ids = _stop_token_ids(self.tokenizer, self.model.generation_config)
        self.pad_id = next(
            i for i in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0) if i is not None
        )
        # Only SamplingParams decide how we sample: ignore the checkpoint's sampling
        # defaults (e.g. a repetition_penalty in generation_config.json), as vLLM
        # does when given explicit SamplingParams. Keep its stop tokens. Passed per
        # call rather than set on the model, which may be a policy in training.
        self.generation_config = GenerationConfig(
            bos_token_id=self.tokenizer.bos_token_id, eos_token_id=self.stop_ids, pad_token_id=self.pad_id
        )

    def sample(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        check_params(params)
        if not prompts:
            return []
        ids = self.encode(prompts)
        per_prompt = 1 if params.greedy else params.n
        # A prompt's n sequences always share one call (num_return_sequences).
        prompts_per_call = max(1, self.batch_sequences // per_prompt)
        out: list[list[Completion]] = []
        for start in range(0, len(ids), prompts_per_call):
            chunk = ids[start : start + prompts_per_call]
            seeds = [prompt_seed(params.seed, start + k) for k in range(len(chunk))]
            out.extend(self._generate(chunk, seeds, params, per_prompt))
        return replicate_greedy(out, params.n) if params.greedy else out

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        """The token ids this sampler feeds the model for ``prompts``."""
        return encode_prompts(self.tokenizer, prompts, add_bos=self.add_bos, model_bos_id=self.model_bos_id)

    @torch.no_grad()
    def _generate(
        self, chunk: list[list[int]], seeds: list[int], params: SamplingParams, per_prompt: int
    ) -> list[list[Completion]]:
        width = max(map(len, chunk))
        input_ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in chunk], device=self.device)
        attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=self.device)
        processors = []
        if params.greedy:
            sampling = dict(do_sample=False)
        else:
            processors.append(_SeededDraw(params, seeds, per_prompt, self.device))
            # Our processor does all the warping; generate's own warpers stay off.
            sampling = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0)
        config = copy.deepcopy(self.generation_config)
        config.update(max_new_tokens=params.max_new_tokens, num_return_sequences=per_prompt, **sampling)
        # generate's multinomial still advances the global RNG; keep that from leaking to the caller.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=config,
                logits_processor=LogitsProcessorList(processors),
            )
        rows = [self._completion(row) for row in output[:, width:].tolist()]
        return [rows[k * per_prompt : (k + 1) * per_prompt] for k in range(len(chunk))]

    def close(self) -> None:
        """Nothing to stop: the model is freed with the sampler."""

    def _completion(self, generated: list[int]) -> Completion:
        # Rows that stopped early are padded up to the batch's longest row: cut at the first stop token.
        end = next((i for i, tok in enumerate(generated) if tok in self.stop_ids), None)
        tokens = generated if end is None else generated[: end + 1]
        return Completion(
            text=self.tokenizer.decode(tokens, skip_special_tokens=True),
            num_tokens=len(tokens),
            finish_reason="length" if end is None else "stop",
        )


def _stop_token_ids(tokenizer, generation_config: GenerationConfig) -> list[int]:
    """The tokenizer's EOS plus the checkpoint's generation_config EOS ids (vLLM stops on the same set)."""
    ids = generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None:
        ids.insert(0, tokenizer.eos_token_id)
    return list(dict.fromkeys(ids))
