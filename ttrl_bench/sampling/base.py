"""What every sampling backend shares: the ``Sampler`` protocol, prompt rendering and encoding,
parameter checks and the per-prompt seed rule (see ``ttrl_bench.sampling`` for the determinism contract)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

from ttrl_bench.errors import UsageError
from ttrl_bench.types import Completion, SamplingParams

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

DTYPES = ("auto", "float32", "bfloat16", "float16")


class Sampler(Protocol):
    backend: str
    tokenizer: "PreTrainedTokenizerBase"

    def sample(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        """``params.n`` completions per prompt, in prompt order."""
        ...

    def close(self) -> None:
        """Release the model (vllm: stop the engine's processes)."""
        ...


def resolve_model(model: str | Path) -> Path:
    """The local directory of ``model``: the path itself, or its snapshot in the HF cache (offline only)."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(f"--model: {path} has no config.json; expected a transformers model directory")
        return path
    # Not a local directory: the only other place we look is the HF cache, never
    # the network (there is none on the machines this runs on, and a silent
    # download would make a run depend on the hub's state).
    from huggingface_hub import snapshot_download

    try:
        cached = snapshot_download(str(model), local_files_only=True)
    except Exception:  # invalid repo id, or not cached: both mean "no such model here"
        raise UsageError(
            f"--model: {model} is neither a local model directory nor a model in the Hugging Face cache;"
            " expected a directory with config.json and weights"
        ) from None
    return Path(cached)


def render_prompt(tokenizer: "PreTrainedTokenizerBase", text: str, chat_template: bool) -> str:
    """The prompt string the model sees: ``text`` as a user turn of the chat template, or as is."""
    if not chat_template:
        return text
    if not getattr(tokenizer, "chat_template", None):
        raise UsageError(
            f"--chat-template: the tokenizer of {getattr(tokenizer, 'name_or_path', 'this model')} has no chat"
            " template; expected a tokenizer with chat_template set, or run without --chat-template"
        )
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )


def encode_prompts(tokenizer: "PreTrainedTokenizerBase", prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of each prompt with the tokenizer's own special tokens added exactly once.

    A chat template usually writes the BOS token into the text already; encoding
    such text with ``add_special_tokens=True`` would give two BOS tokens, so then
    the tokenizer is told not to add its own.
    """
    bos = tokenizer.bos_token
    encoded = []
    for text in prompts:
        has_bos = bool(bos) and text.startswith(bos)
        encoded.append(tokenizer(text, add_special_tokens=not has_bos)["input_ids"])
    return encoded


def check_params(params: SamplingParams) -> None:
    """Reject parameters no backend can honour, naming the field."""
    problems = [
        (params.n >= 1, "n", "a positive integer"),
        (params.max_new_tokens >= 1, "max_new_tokens", "a positive integer"),
        (params.temperature >= 0, "temperature", ">= 0 (0 = greedy)"),
        (0 < params.top_p <= 1, "top_p", "in (0, 1]"),
        (params.top_k >= 0, "top_k", ">= 0 (0 = off)"),
    ]
    for ok, name, expected in problems:
        if not ok:
            raise UsageError(f"sampling parameter {name}={getattr(params, name)!r}; expected {expected}")


def prompt_seed(seed: int, index: int) -> int:
    """The seed of prompt ``index`` of a call made with ``seed``: a function of ``seed + index`` only.

    So ``sample(prompts[k:], seed + k)`` redraws exactly what ``sample(prompts, seed)``
    drew for those prompts: the eval loop finishes an interrupted chunk that way.
    Hashed rather than ``seed + index`` itself: vLLM seeds the j-th of a request's n
    samples with ``request seed + j``, so consecutive request seeds would make
    prompt i+1's samples replay prompt i's random numbers. Kept below 2**62 so
    ``+ j`` stays a valid int64 seed.
    """
    digest = hashlib.blake2b(str(seed + index).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 2


def replicate_greedy(completions: list[list[Completion]], n: int) -> list[list[Completion]]:
    """Greedy decoding is deterministic: sample once per prompt and repeat it ``n`` times."""
    return [group * n for group in completions]


class PartialSample(Exception):
    """A ``sample`` call that failed part-way: ``finished`` maps prompt index -> its completions,
    which the caller stores before re-raising ``cause`` (no finished sample is lost)."""

    def __init__(self, finished: dict[int, list[Completion]], cause: BaseException):
        super().__init__(str(cause))
        self.finished = finished
        self.cause = cause


def prompt_for(sampler: Sampler, text: str, chat_template: bool) -> str:
    """What to pass to ``sampler.sample`` for a question's text: rendered here, unless the sampler
    sends messages to a chat endpoint (the server applies its own template)."""
    if getattr(sampler, "takes_messages", False):
        return text
    return render_prompt(sampler.tokenizer, text, chat_template)
