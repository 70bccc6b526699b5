"""Fault suite, part 4: a weight change anywhere in a large file changes the model fingerprint,
and the whole-file digest is cached (by path, size, mtime, ctime, inode) so a big model is read once."""
from __future__ import annotations

import json
import os
import shutil

from ttrl_bench.measure import provenance
from ttrl_bench.measure.provenance import digest_cache_path, model_fingerprint

SIZE = 15 << 20  # 15 MiB: far beyond the 4 MiB where hashing used to skip the middle


def make_model(directory):
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with open(directory / "model.safetensors", "wb") as fh:
        fh.write(os.urandom(SIZE))
    return directory


def flip_middle_byte(path, keep_mtime: bool) -> None:
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(SIZE // 2)
        byte = fh.read(1)
        fh.seek(SIZE // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    if keep_mtime:  # as `touch -d` or `rsync -t` would leave it
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_change_in_the_middle_of_a_large_file_changes_the_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setenv("TTRL_BENCH_CACHE", str(tmp_path / "cache"))
    first = make_model(tmp_path / "a")
    second = tmp_path / "b"
    shutil.copytree(first, second)
    assert model_fingerprint(first) == model_fingerprint(second)  # same content, other path: same fingerprint
    before = model_fingerprint(second)
    flip_middle_byte(second / "model.safetensors", keep_mtime=False)
    assert model_fingerprint(second) != before
    flip_middle_byte(second / "model.safetensors", keep_mtime=False)  # flipped back: equal again
    assert model_fingerprint(second) == before
    flip_middle_byte(second / "model.safetensors", keep_mtime=True)  # same size and mtime: ctime gives it away
    assert model_fingerprint(second) != before


def test_a_large_file_is_read_once_then_found_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TTRL_BENCH_CACHE", str(tmp_path / "cache"))
    model = make_model(tmp_path / "m")
    reads = []
    real = provenance._hash_file
    monkeypatch.setattr(provenance, "_hash_file", lambda p: reads.append(p.name) or real(p))
    fp = model_fingerprint(model)
    assert sorted(reads) == ["config.json", "model.safetensors"]
    cache = json.loads(digest_cache_path().read_text())
    assert str((model / "model.safetensors").resolve()) in cache["files"]
    reads.clear()
    assert model_fingerprint(model) == fp and reads == []  # nothing re-read
    digest_cache_path().write_text("{not json")  # a damaged cache is rebuilt, not trusted or fatal
    assert model_fingerprint(model) == fp and sorted(reads) == ["config.json", "model.safetensors"]
