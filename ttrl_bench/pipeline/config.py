"""What the user asks for (``EvalConfig``) and what it resolves to (``Prepared``): task, questions,
model, sampling parameters and the identity that makes two runs the same run."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ttrl_bench.data import data_fingerprint, load_questions
from ttrl_bench.demo import EMBEDDED_MODEL, EMBEDDED_NAME
from ttrl_bench.errors import UsageError
from ttrl_bench.measure.loop import chunk_size_for, default_chunk_tokens
from ttrl_bench.measure.provenance import model_fingerprint
from ttrl_bench.tasks import Task, get_task
from ttrl_bench.types import Question, SamplingParams

DEFAULT_TASK = "synth_near"


@dataclass(frozen=True)
class EvalConfig:
    """What the user asked for; ``None`` means "the task's default"."""

    task: str = DEFAULT_TASK
    model: str | None = None  # None: the embedded tiny model
    model_name: str | None = None  # display name in tables; default derived from the path
    backend: str = "hf"
    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_new_tokens: int | None = None
    limit: int | None = None
    seed: int = 0
    data: str | None = None
    chat_template: bool | None = None  # None: the task's (true, false or "auto")
    trust_remote_code: bool = False
    batch_size: int | None = None
    grading_timeout: float = 5.0
    add_bos: bool | None = None  # None: as the tokenizer encodes (warned when the model expects a BOS it lacks)
    dtype: str = "auto"  # sampling dtype; auto = the checkpoint's
    chunk_tokens: int | None = None  # tokens per sampler call; None: measure.loop.default_chunk_tokens()
    vllm_kv_cache_gb: float | None = None
    vllm_memory_share: float | None = None
    vllm_max_model_len: int | None = None

    def sampler_options(self) -> dict:
        """What ``make_sampler`` takes from this config (besides backend and model)."""
        return dict(
            trust_remote_code=self.trust_remote_code, batch_size=self.batch_size, add_bos=self.add_bos,
            dtype=self.dtype, kv_cache_gb=self.vllm_kv_cache_gb, memory_share=self.vllm_memory_share,
            max_model_len=self.vllm_max_model_len,
        )


def resolve_model(model: str | None) -> tuple[Path, str]:
    """The model directory and its display name."""
    if model is None:
        return EMBEDDED_MODEL, EMBEDDED_NAME
    path = Path(model).expanduser()
    if not path.is_dir():
        raise UsageError(
            f"--model: {model!r} is not a local model directory (no hub access at run time; "
            "download it first and pass its path)"
        )
    if not (path / "config.json").is_file():
        # checked here, not only by the sampler: before a run directory is made or a progress bar drawn
        raise UsageError(f"--model: {model!r} has no config.json; expected a transformers model directory")
    return path, path.resolve().name


def resolve_sampling(task: Task, cfg: EvalConfig) -> SamplingParams:
    g = task.generation

    def pick(value, default):
        return default if value is None else value

    params = SamplingParams(
        n=pick(cfg.n, g.n),
        temperature=pick(cfg.temperature, g.temperature),
        top_p=pick(cfg.top_p, g.top_p),
        top_k=pick(cfg.top_k, g.top_k),
        max_new_tokens=pick(cfg.max_new_tokens, g.max_new_tokens),
        seed=cfg.seed,
    )
    if params.n < 1:
        raise UsageError(f"-n/--n: must be an integer >= 1, got {params.n}")
    if params.max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens: must be >= 1, got {params.max_new_tokens}")
    if params.temperature < 0:
        raise UsageError(f"--temperature: must be >= 0, got {params.temperature}")
    if not 0 < params.top_p <= 1:
        raise UsageError(f"--top-p: must be in (0, 1], got {params.top_p}")
    if cfg.limit is not None and cfg.limit < 1:
        raise UsageError(f"--limit: must be >= 1, got {cfg.limit}")
    return params


@dataclass(frozen=True)
class Prepared:
    task: Task
    questions: list[Question]
    model_dir: Path
    model_name: str
    params: SamplingParams
    chat_template: bool  # resolved: is the tokenizer's template applied?
    identity: dict  # what makes two runs the same run
    prompt_format: dict  # how prompts were made (for records): chat template asked and used, BOS rule
    chunk_tokens: int


def prepare(cfg: EvalConfig) -> Prepared:
    task = get_task(cfg.task)
    _check_options(cfg)
    model_dir, default_name = resolve_model(cfg.model)
    params = resolve_sampling(task, cfg)
    questions = load_questions(task, data_path=cfg.data, limit=cfg.limit, trust_remote_code=cfg.trust_remote_code)
    if not questions:
        raise UsageError(f"--task {task.name}: the data holds no questions")
    asked = task.prompt.chat_template if cfg.chat_template is None else cfg.chat_template
    chat = _resolve_chat_template(asked, model_dir, cfg.trust_remote_code)
    chunk_tokens = default_chunk_tokens() if cfg.chunk_tokens is None else cfg.chunk_tokens
    identity = {
        "task": task.name,
        "data_fingerprint": data_fingerprint(questions),
        "model_fingerprint": model_fingerprint(model_dir),
        "backend": cfg.backend,
        "sampling": asdict(params),
        "chat_template": chat,
        "chunk": {"questions": chunk_size_for(params.n), "tokens": chunk_tokens},
    }
    # only when set, so that runs without them keep their identity across versions
    if cfg.add_bos is not None:
        identity["add_bos"] = cfg.add_bos
    if cfg.dtype != "auto":
        identity["dtype"] = cfg.dtype
    prompt_format = {"chat_template": chat, "chat_template_requested": asked, "add_bos": cfg.add_bos}
    return Prepared(task, questions, model_dir, cfg.model_name or default_name, params, chat, identity,
                    prompt_format, chunk_tokens)


def _check_options(cfg: EvalConfig) -> None:
    """Flags no sampler sees before a run directory exists."""
    from ttrl_bench.sampling import DTYPES

    if cfg.dtype not in DTYPES:
        raise UsageError(f"--dtype: unknown dtype {cfg.dtype!r}; expected one of {', '.join(DTYPES)}")
    if cfg.chunk_tokens is not None and cfg.chunk_tokens < 1:
        raise UsageError(f"--chunk-tokens: must be >= 1, got {cfg.chunk_tokens}")
    if cfg.backend != "vllm":
        for flag, value in (("--vllm-kv-cache-gb", cfg.vllm_kv_cache_gb), ("--vllm-memory-share", cfg.vllm_memory_share),
                            ("--vllm-max-model-len", cfg.vllm_max_model_len)):
            if value is not None:
                raise UsageError(f"{flag}: only for --backend vllm; expected no {flag} with --backend {cfg.backend}")
    if cfg.vllm_kv_cache_gb is not None and not cfg.vllm_kv_cache_gb > 0:
        raise UsageError(f"--vllm-kv-cache-gb: must be > 0, got {cfg.vllm_kv_cache_gb}")
    if cfg.vllm_memory_share is not None and not 0 < cfg.vllm_memory_share <= 1:
        raise UsageError(f"--vllm-memory-share: must be in (0, 1], got {cfg.vllm_memory_share}")
    if cfg.vllm_max_model_len is not None and cfg.vllm_max_model_len < 1:
        raise UsageError(f"--vllm-max-model-len: must be >= 1, got {cfg.vllm_max_model_len}")


def _resolve_chat_template(asked: bool | str, model_dir: Path, trust_remote_code: bool) -> bool:
    """``auto``: the tokenizer's template if it has one; ``True``: it must have one (else exit 2); ``False``: plain."""
    if asked is False:
        return False
    has_template = _has_chat_template(model_dir, trust_remote_code)
    if asked is True and not has_template:
        raise UsageError(
            f"--chat-template: the tokenizer of {model_dir} has no chat template; pass --no-chat-template"
            " (or leave the task's default, auto, which uses plain text for such models)"
        )
    return has_template


def _has_chat_template(model_dir: Path, trust_remote_code: bool) -> bool:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    return bool(getattr(tokenizer, "chat_template", None))
