"""What the user asks for (``EvalConfig``) and what it resolves to (``Prepared``): task, questions,
model, sampling parameters and the identity that makes two runs the same run."""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ttrl_bench.data import data_fingerprint, load_questions
from ttrl_bench.demo import EMBEDDED_MODEL, EMBEDDED_NAME
from ttrl_bench.errors import UsageError
from ttrl_bench.measure.loop import chunk_size_for
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
    chat_template: bool | None = None
    trust_remote_code: bool = False
    batch_size: int | None = None
    grading_timeout: float = 5.0


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
    for flag, value in (("--temperature", params.temperature), ("--top-p", params.top_p)):
        if not math.isfinite(value):
            raise UsageError(f"{flag}: must be a finite number, got {value}")
    if params.top_k < 0:
        raise UsageError(f"--top-k: must be >= 0 (0 = off), got {params.top_k}")
    if cfg.batch_size is not None and cfg.batch_size < 1:
        raise UsageError(f"--batch-size: must be >= 1, got {cfg.batch_size}")
    if cfg.grading_timeout is not None and not cfg.grading_timeout > 0:
        raise UsageError(f"--grading-timeout: must be > 0 seconds, got {cfg.grading_timeout}")
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
    chat_template: bool
    identity: dict  # what makes two runs the same run


def prepare(cfg: EvalConfig) -> Prepared:
    task = get_task(cfg.task)
    model_dir, default_name = resolve_model(cfg.model)
    params = resolve_sampling(task, cfg)
    check_model_files(model_dir, cfg.trust_remote_code)
    questions = load_questions(task, data_path=cfg.data, limit=cfg.limit, trust_remote_code=cfg.trust_remote_code)
    if not questions:
        raise UsageError(f"--task {task.name}: the data holds no questions")
    chat = task.prompt.chat_template if cfg.chat_template is None else cfg.chat_template
    if chat:
        _check_chat_template(model_dir, cfg.trust_remote_code)
    identity = {
        "task": task.name,
        "data_fingerprint": data_fingerprint(questions),
        "model_fingerprint": model_fingerprint(model_dir),
        "backend": cfg.backend,
        "sampling": asdict(params),
        "chat_template": chat,
        "chunk": chunk_size_for(params.n),
    }
    return Prepared(task, questions, model_dir, cfg.model_name or default_name, params, chat, identity)


def _check_chat_template(model_dir: Path, trust_remote_code: bool) -> None:
    """Fail before anything is written when the prompts need a chat template the tokenizer lacks."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    if not getattr(tokenizer, "chat_template", None):
        raise UsageError(
            f"--chat-template: the tokenizer of {model_dir} has no chat template; pass --no-chat-template"
        )


