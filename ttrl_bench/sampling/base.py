"""What every sampling backend shares: the ``Sampler`` protocol, prompt rendering and encoding,
parameter checks and the per-prompt seed rule (see ``ttrl_bench.sampling`` for the determinism contract)."""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

from ttrl_bench.errors import UsageError
from ttrl_bench.types import Completion, SamplingParams

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class LoadOptions:
    """How a sampler loads and runs the model, the same options for every backend (each refuses
    what it cannot honour: vllm a ``device``, openai everything the server decides)."""

    trust_remote_code: bool = False
    dtype: str = "auto"  # one of DTYPES; "auto" = the checkpoint's own dtype
    device: str | None = None  # hf only; None = cuda when available, else cpu
    batch_size: int | None = None  # hf: sequences per generate call; vllm: max_num_seqs
    add_bos: bool | None = None  # see encode_prompts (None = the tokenizer's rule)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise UsageError(f"--dtype: unknown dtype {self.dtype!r}; expected one of {', '.join(DTYPES)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"--batch-size: got {self.batch_size}; expected a positive integer")


class Sampler(Protocol):
    backend: str
    tokenizer: "PreTrainedTokenizerBase"

    def sample(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        """``params.n`` completions per prompt, in prompt order."""
        ...

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        """The token ids the model is fed for ``prompts`` (``encode_prompts`` with the sampler's BOS rule)."""
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


def model_bos_token_id(model_dir: Path, trust_remote_code: bool = False) -> int | None:
    """The BOS token id the model's config names (its text config for multimodal ones), or None."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    except Exception:  # an unloadable config fails later, where the model itself is loaded, with its own message
        return None
    return config_bos_token_id(config)


def config_bos_token_id(config) -> int | None:
    for cfg in (config.get_text_config(), config):
        bos = getattr(cfg, "bos_token_id", None)
        if isinstance(bos, int):
            return bos
    return None


_BOS_WARNED: set[tuple[str, int]] = set()


def encode_prompts(
    tokenizer: "PreTrainedTokenizerBase",
    prompts: Sequence[str],
    *,
    add_bos: bool | None = None,
    model_bos_id: int | None = None,
) -> list[list[int]]:
    """Token ids of each prompt with the tokenizer's own special tokens added exactly once.

    A chat template usually writes the BOS token into the text already; encoding
    such text with ``add_special_tokens=True`` would give two BOS tokens, so then
    the tokenizer is told not to add its own.

    ``add_bos`` (``--add-bos/--no-add-bos``): True = every prompt starts with exactly one
    BOS (``model_bos_id``, else the tokenizer's), False = none; None = what the tokenizer
    does, with a warning (once per process and model) when ``model_bos_id`` is set and a
    prompt lacks it: tokenizers rebuilt from GGUF, for one, add none, and a model trained
    with BOS then sees out-of-distribution input and answers differently.
    """
    bos = tokenizer.bos_token
    encoded = []
    for text in prompts:
        has_bos = bool(bos) and text.startswith(bos)
        encoded.append(list(tokenizer(text, add_special_tokens=not has_bos)["input_ids"]))
    if add_bos is None:
        if model_bos_id is not None and any(ids[:1] != [model_bos_id] for ids in encoded):
            _warn_missing_bos(tokenizer, model_bos_id)
        return encoded
    bos_id = model_bos_id if model_bos_id is not None else tokenizer.bos_token_id
    if bos_id is None:
        raise UsageError(
            f"--add-bos/--no-add-bos: neither the model's config nor the tokenizer of"
            f" {getattr(tokenizer, 'name_or_path', 'this model')} names a BOS token; expected no --add-bos"
        )
    stripped = [ids[1:] if ids[:1] == [bos_id] else ids for ids in encoded]
    return [[bos_id, *ids] for ids in stripped] if add_bos else stripped


def _warn_missing_bos(tokenizer: "PreTrainedTokenizerBase", bos_id: int) -> None:
    key = (str(getattr(tokenizer, "name_or_path", "")), bos_id)
    if key in _BOS_WARNED:
        return
    _BOS_WARNED.add(key)
    print(
        f"ttrl-bench: warning: the model's config names BOS token id {bos_id} but the tokenizer of {key[0] or 'the model'}"
        " does not start the prompt with it; pass --add-bos to add it or --no-add-bos to silence this",
        file=sys.stderr,
    )


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
