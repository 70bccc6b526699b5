"""What the user asks for (``EvalConfig``) and what it resolves to (``Prepared``): task, questions,
model, sampling parameters and the identity that makes two runs the same run."""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ttrl_bench.data import data_fingerprint, load_questions
from ttrl_bench.demo import EMBEDDED_MODEL, EMBEDDED_NAME, EPISODES_MODEL, EPISODES_NAME
from ttrl_bench.errors import UsageError
from ttrl_bench.measure.loop import chunk_size_for, default_chunk_tokens
from ttrl_bench.measure.provenance import model_fingerprint
from ttrl_bench.pipeline.checks import check_int
from ttrl_bench.grading.grader import DEFAULT_BUDGET_SECONDS
from ttrl_bench.sampling import BACKENDS, DTYPES
from ttrl_bench.sampling.openai import ServerOptions
from ttrl_bench.tasks import Task, get_task, with_fields
from ttrl_bench.types import Question, SamplingParams

DEFAULT_TASK = "synth_near"


@dataclass(frozen=True)
class EvalConfig:
    """What to measure; ``None`` means "the task's default". Checked at construction (one-line errors
    that name the CLI flag), so a bad value never creates a run directory or loads a model."""

    task: str = DEFAULT_TASK  # a name from ``ttrl-bench tasks``, or a task YAML file
    model: str | None = None  # a local model directory; None: the task's default model, else the embedded one
    model_name: str | None = None  # display name in tables; default derived from the path
    backend: str = "hf"  # a name from ``ttrl_bench.sampling.BACKENDS``
    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_new_tokens: int | None = None
    limit: int | None = None  # only the first K questions
    seed: int = 0
    data: str | None = None  # a local JSON/JSONL/parquet file instead of the hub
    chat_template: bool | None = None  # None: the task's (true, false or "auto": the template if the tokenizer has one)
    trust_remote_code: bool = False
    batch_size: int | None = None
    grading_timeout: float = 5.0  # seconds per math-verify call
    grading_budget: float | None = None  # seconds of grading per question; None: the task's, else 30
    fields: str | None = None  # --fields "question=problem,answer=solution": column mapping for one-off files
    server: ServerOptions | None = None  # --backend openai: where the servers are
    lm_eval_include_path: str | None = None  # --task lm_eval:NAME: extra lm-eval task YAML folder
    add_bos: bool | None = None  # None: as the tokenizer encodes (warned when the model expects a BOS it lacks)
    dtype: str = "auto"  # sampling dtype; auto = the checkpoint's
    chunk_tokens: int | None = None  # tokens per sampler call; None: measure.loop.default_chunk_tokens()
    vllm_kv_cache_gb: float | None = None
    vllm_memory_share: float | None = None
    vllm_max_model_len: int | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UsageError(f"--backend: unknown backend {self.backend!r}; expected one of {', '.join(BACKENDS)}")
        check_int("-n/--n", self.n, 1)
        check_int("--top-k", self.top_k, 0, "(0 = off)")
        check_int("--max-new-tokens", self.max_new_tokens, 1)
        check_int("--limit", self.limit, 1)
        check_int("--batch-size", self.batch_size, 1)
        check_int("--seed", self.seed, 0)
        if self.temperature is not None and not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise UsageError(f"--temperature: must be a finite number >= 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise UsageError(f"--top-p: must be in (0, 1], got {self.top_p}")
        if not (math.isfinite(self.grading_timeout) and self.grading_timeout > 0):
            raise UsageError(f"--grading-timeout: must be a positive number of seconds, got {self.grading_timeout}")
        if self.grading_budget is not None and not (math.isfinite(self.grading_budget) and self.grading_budget > 0):
            raise UsageError(f"--grading-budget: must be a number of seconds > 0, got {self.grading_budget}")
        _check_sampler_options(self)


def _check_sampler_options(cfg: EvalConfig) -> None:
    """Flags no sampler sees before a run directory exists."""
    if cfg.dtype not in DTYPES:
        raise UsageError(f"--dtype: unknown dtype {cfg.dtype!r}; expected one of {', '.join(DTYPES)}")
    check_int("--chunk-tokens", cfg.chunk_tokens, 1)
    if cfg.backend != "vllm":
        for flag, value in (("--vllm-kv-cache-gb", cfg.vllm_kv_cache_gb), ("--vllm-memory-share", cfg.vllm_memory_share),
                            ("--vllm-max-model-len", cfg.vllm_max_model_len)):
            if value is not None:
                raise UsageError(f"{flag}: only for --backend vllm; expected no {flag} with --backend {cfg.backend}")
    if cfg.vllm_kv_cache_gb is not None and not cfg.vllm_kv_cache_gb > 0:
        raise UsageError(f"--vllm-kv-cache-gb: must be > 0, got {cfg.vllm_kv_cache_gb}")
    if cfg.vllm_memory_share is not None and not 0 < cfg.vllm_memory_share <= 1:
        raise UsageError(f"--vllm-memory-share: must be in (0, 1], got {cfg.vllm_memory_share}")
    check_int("--vllm-max-model-len", cfg.vllm_max_model_len, 1)


def request_dict(cfg: EvalConfig) -> dict:
    """The request as recorded in config.json: never the API key."""
    out = asdict(cfg)
    if out.get("server"):
        out["server"]["api_key"] = None if cfg.server.api_key is None else "<redacted>"
    return out


EMBEDDED = {"embedded": (EMBEDDED_MODEL, EMBEDDED_NAME), "embedded:episodes": (EPISODES_MODEL, EPISODES_NAME)}


def resolve_model(model: str | None, task_default: str | None = None) -> tuple[Path, str]:
    """The model directory and its display name (--model, else the task's default, else the embedded one)."""
    if model is None:
        model = task_default or "embedded"
    if model in EMBEDDED:
        return EMBEDDED[model]
    path = Path(model).expanduser()
    if not path.is_dir():
        raise UsageError(
            f"--model: {model!r} is not a local model directory (no hub access at run time; "
            "download it first and pass its path)"
        )
    if not (path / "config.json").is_file():
        # checked here, not only by the sampler: before a run directory is made or a progress bar drawn
        raise UsageError(f"--model: {model!r} has no config.json; expected a transformers model directory")
    return path, default_model_name(path)


def check_model_files(path: Path, trust_remote_code: bool) -> None:
    """What would make loading the model fail, found without loading it (cheap: headers only)."""
    import json

    where = f"--model {path}"
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{where}: config.json is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type", config.get("architectures")), (str, list)):
        raise UsageError(f"{where}: config.json has no 'model_type'; expected a transformers model config")
    if "auto_map" in config and not trust_remote_code:
        raise UsageError(f"{where}: the model needs its own Python code (config.json 'auto_map'); "
                         "pass --trust-remote-code if you trust that code")
    weights = sorted(path.glob("*.safetensors"))
    if not weights and not any(path.glob("*.bin")) and not any(path.glob("*.gguf")):
        raise UsageError(f"{where}: no weights (expected model.safetensors, *.safetensors shards or pytorch_model.bin)")
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise UsageError(f"{where}: model.safetensors.index.json is not a valid shard index") from None
        missing = sorted(s for s in shards if not (path / s).is_file())
        if missing:
            raise UsageError(f"{where}: weight shard {missing[0]} named in model.safetensors.index.json is missing")
    from safetensors import SafetensorError, safe_open

    for w in weights:
        try:
            with safe_open(str(w), "pt") as fh:  # parses the header and checks it against the file size
                fh.keys()
        except (SafetensorError, OSError, ValueError) as exc:
            raise UsageError(f"{where}: {w.name} is damaged or truncated ({exc})") from None
    tokenizer_files = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json", "spiece.model")
    if not any((path / name).is_file() for name in tokenizer_files):
        raise UsageError(f"{where}: no tokenizer (expected tokenizer.json or tokenizer_config.json next to the weights)")


# Directory names that say where a model is, not which: "model", "checkpoint-500", a hub snapshot hash.
_GENERIC_DIR = re.compile(
    r"(model|models|weights|hf|final|last|best|latest|merged|output|outputs|out|export|"
    r"(checkpoint|ckpt|step|epoch|iter)[-_]?\d*|[0-9a-f]{40})", re.I)


def default_model_name(path: Path) -> str:
    """A display name that tells models apart: the directory name, with its parents while they are
    generic ("run7/checkpoint-500", "exp/final/model"); a hub cache snapshot gives "org/name"."""
    path = path.resolve()
    parts = [path.name]
    parent = path.parent
    if parent.name == "snapshots" and parent.parent.name.startswith("models--"):
        return parent.parent.name[len("models--"):].replace("--", "/")
    while _GENERIC_DIR.fullmatch(parts[0]) and parent != parent.parent and len(parts) < 3:
        parts.insert(0, parent.name)
        parent = parent.parent
    return "/".join(parts)


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
    return params  # the task's own defaults were checked when its file was read


@dataclass(frozen=True)
class Prepared:
    task: Task
    questions: list[Question]
    model_dir: Path | None  # None: --backend openai without a local tokenizer (--model)
    model_name: str
    params: SamplingParams
    chat_template: bool  # resolved: is the tokenizer's template applied?
    identity: dict  # what makes two runs the same run
    server: ServerOptions | None = None  # --backend openai, with the model id resolved
    grading_budget: float = DEFAULT_BUDGET_SECONDS  # seconds of grading per question
    prompt_format: dict = field(default_factory=dict)  # for records: chat template asked and used, BOS rule
    chunk_tokens: int | None = None  # tokens per sampler call


def sampler_options(cfg: EvalConfig, prep: Prepared) -> dict:
    """What ``make_sampler`` takes from the config (besides backend and model); None values are dropped there."""
    options = dict(
        trust_remote_code=cfg.trust_remote_code, batch_size=cfg.batch_size, add_bos=cfg.add_bos, dtype=cfg.dtype,
        kv_cache_gb=cfg.vllm_kv_cache_gb, memory_share=cfg.vllm_memory_share, max_model_len=cfg.vllm_max_model_len,
    )
    if prep.server is not None:  # the openai backend takes only its server options
        options = {"trust_remote_code": cfg.trust_remote_code, "server": prep.server}
    return options


def prepare(cfg: EvalConfig) -> Prepared:
    task = get_task(cfg.task, lm_eval_include_path=cfg.lm_eval_include_path)
    if cfg.fields:
        task = with_fields(task, cfg.fields)
    budget = cfg.grading_budget or task.grading_budget or DEFAULT_BUDGET_SECONDS
    if cfg.backend == "openai":
        return replace(_prepare_openai(cfg, task), grading_budget=budget)
    if cfg.server is not None:
        raise UsageError(f"--base-url: only used with --backend openai, not {cfg.backend}")
    model_dir, default_name = resolve_model(cfg.model, task.model)
    check_model_files(model_dir, cfg.trust_remote_code)  # unreadable weights, custom code: before any work
    params, questions, asked = _questions_and_sampling(cfg, task)
    chat = _resolve_chat_template(asked, model_dir, cfg.trust_remote_code)
    identity = _identity(cfg, task, questions, model_fingerprint(model_dir), params, chat)
    prompt_format = {"chat_template": chat, "chat_template_requested": asked, "add_bos": cfg.add_bos}
    return Prepared(task, questions, model_dir, cfg.model_name or default_name, params, chat, identity,
                    grading_budget=budget, prompt_format=prompt_format, chunk_tokens=identity["chunk"]["tokens"])


def _questions_and_sampling(cfg: EvalConfig, task: Task) -> tuple[SamplingParams, list[Question], bool | str]:
    params = resolve_sampling(task, cfg)
    questions = load_questions(task, data_path=cfg.data, limit=cfg.limit, trust_remote_code=cfg.trust_remote_code)
    if not questions:
        raise UsageError(f"--task {task.name}: the data holds no questions")
    asked = task.prompt.chat_template if cfg.chat_template is None else cfg.chat_template
    return params, questions, asked


def _identity(cfg: EvalConfig, task: Task, questions: list[Question], fingerprint: str, params: SamplingParams,
              chat: bool) -> dict:
    chunk_tokens = default_chunk_tokens() if cfg.chunk_tokens is None else cfg.chunk_tokens
    identity = {
        "task": task.name,
        "data_fingerprint": data_fingerprint(questions),
        "model_fingerprint": fingerprint,
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
    return identity


def _prepare_openai(cfg: EvalConfig, task: Task) -> Prepared:
    """The model is whatever the servers serve as --model-id; --model, if given, is only its local tokenizer
    (for the chat template and BOS handling). The server URLs are not part of the identity: adding or
    replacing a server of the same model resumes the same run."""
    from ttrl_bench.sampling.openai import resolve_model_id

    if cfg.server is None:
        raise UsageError("--base-url: required with --backend openai (e.g. http://HOST:8000/v1)")
    model_dir = _tokenizer_dir(cfg.model) if cfg.model is not None else None
    params, questions, asked = _questions_and_sampling(cfg, task)
    if cfg.server.endpoint == "chat":
        if asked is False:
            raise UsageError("--endpoint chat: the server applies its chat template, but this run feeds plain prompts "
                             "(chat template off); pass --chat-template or use --endpoint completions")
        chat = True
    elif model_dir is None:
        if asked is True:
            raise UsageError("--chat-template: with --backend openai and the completions endpoint the template comes "
                             "from --model (a local copy of the tokenizer); pass --model DIR, --endpoint chat, "
                             "or --no-chat-template")
        chat = False  # "auto" without a local tokenizer: plain prompts
    else:
        chat = _resolve_chat_template(asked, model_dir, cfg.trust_remote_code)
    model_id = resolve_model_id(cfg.server)  # one line and exit 2 for a bad URL, key or model id
    identity = _identity(cfg, task, questions, f"openai:{model_id}", params, chat)
    identity["server"] = {"model_id": model_id, "endpoint": cfg.server.endpoint,
                          "tokenizer_fingerprint": None if model_dir is None else model_fingerprint(model_dir)}
    server = replace(cfg.server, model_id=model_id)
    return Prepared(task, questions, model_dir, cfg.model_name or model_id, params, chat, identity, server,
                    prompt_format={"chat_template": chat, "chat_template_requested": asked, "add_bos": cfg.add_bos},
                    chunk_tokens=identity["chunk"]["tokens"])


def _tokenizer_dir(model: str) -> Path:
    path = Path(model).expanduser()
    if not path.is_dir():
        raise UsageError(f"--model: {model!r} is not a local directory; with --backend openai it is the served "
                         "model's tokenizer (a local copy), used for the chat template")
    return path


def _resolve_chat_template(asked: bool | str, model_dir: Path, trust_remote_code: bool) -> bool:
    """``auto``: the tokenizer's template if it has one; ``True``: it must have one (else exit 2); ``False``: plain."""
    if asked is False:
        return False
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if asked is True and not has_template:
        raise UsageError(
            f"--chat-template: the tokenizer of {model_dir} has no chat template; pass --no-chat-template"
            " (or leave the task's default, auto, which uses plain text for such models)"
        )
    return has_template
