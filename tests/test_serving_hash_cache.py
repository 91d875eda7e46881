"""The verified-hash cache: a file checked once is not re-read while unchanged, and any change is re-hashed."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

import serving.bundle as bundle_mod
import serving.hash_cache as hash_cache_mod
from serving.bundle import BundleError
from serving.guard import Guard
from serving.hash_cache import HashCache, default_cache_path


@pytest.fixture
def aged(bundle, tmp_path, monkeypatch) -> Path:
    """A copy of the bundle whose timestamps are older than the (shortened) racy window."""
    monkeypatch.setattr(hash_cache_mod, "RACY_SECONDS", 0.05)
    dst = tmp_path / "bundle"
    shutil.copytree(bundle, dst)
    time.sleep(0.1)
    return dst


@pytest.fixture
def hashed(monkeypatch) -> list[str]:
    """Names of the files sha256_file actually reads."""
    calls: list[str] = []
    real = bundle_mod.sha256_file

    def counting(path):
        calls.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(bundle_mod, "sha256_file", counting)
    return calls


def test_second_load_trusts_unchanged_files(aged: Path, tmp_path: Path, hashed: list[str]) -> None:
    cache_file = tmp_path / "c.json"
    Guard.load(aged, hash_cache=HashCache(cache_file))
    assert sorted(hashed) == ["model.fp32.onnx", "model.onnx", "tokenizer.json"]
    stored = json.loads(cache_file.read_text())["files"]
    assert {Path(k).name for k in stored} == set(hashed)
    hashed.clear()
    g = Guard.load(aged, hash_cache=HashCache(cache_file))
    assert hashed == []
    assert g.assess([{"role": "user", "text": "hi"}]).decision == "continue"


@pytest.mark.parametrize("victim", ["model.onnx", "model.fp32.onnx", "tokenizer.json"])
@pytest.mark.parametrize("same_size", [True, False])
def test_change_after_caching_is_refused(aged: Path, tmp_path: Path, victim: str, same_size: bool) -> None:
    cache_file = tmp_path / "c.json"
    Guard.load(aged, hash_cache=HashCache(cache_file))
    data = bytearray((aged / victim).read_bytes())
    if same_size:
        data[len(data) // 2] ^= 0xFF
    else:
        data += b" "
    (aged / victim).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=victim):
        Guard.load(aged, hash_cache=HashCache(cache_file))


def test_replaced_file_with_old_timestamps_is_refused(aged: Path, tmp_path: Path) -> None:
    """Restoring mtime (what `touch -r` or `cp -p` can do) does not fool it: the inode and ctime differ."""
    cache_file = tmp_path / "c.json"
    Guard.load(aged, hash_cache=HashCache(cache_file))
    victim = aged / "tokenizer.json"
    st = victim.stat()
    forged = victim.with_suffix(".new")
    forged.write_bytes(victim.read_bytes().replace(b"[UNK]", b"[UNX]"))
    os.replace(forged, victim)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(BundleError, match="tokenizer.json"):
        Guard.load(aged, hash_cache=HashCache(cache_file))


def test_recent_files_are_not_remembered(bundle, tmp_path: Path) -> None:
    """A file written within the racy window could change again inside the same timestamp tick."""
    dst = tmp_path / "bundle"
    shutil.copytree(bundle, dst)
    cache = HashCache(tmp_path / "c.json")
    Guard.load(dst, hash_cache=cache)
    assert not (tmp_path / "c.json").exists()


def test_a_wrong_remembered_digest_is_not_trusted(aged: Path, tmp_path: Path, hashed: list[str]) -> None:
    cache_file = tmp_path / "c.json"
    Guard.load(aged, hash_cache=HashCache(cache_file))
    raw = json.loads(cache_file.read_text())
    for entry in raw["files"].values():
        entry[5] = "0" * 64
    cache_file.write_text(json.dumps(raw))
    hashed.clear()
    Guard.load(aged, hash_cache=HashCache(cache_file))
    assert sorted(hashed) == ["model.fp32.onnx", "model.onnx", "tokenizer.json"]


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'{"version": 99, "files": {}}', b"\xff\xfe"])
def test_corrupt_cache_is_ignored(aged: Path, tmp_path: Path, content: bytes) -> None:
    cache_file = tmp_path / "c.json"
    cache_file.write_bytes(content)
    Guard.load(aged, hash_cache=HashCache(cache_file))
    assert json.loads(cache_file.read_text())["version"] == 1  # rewritten


def test_unwritable_cache_does_not_fail_the_load(aged: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    Guard.load(aged, hash_cache=HashCache(blocker / "sub" / "c.json"))


def test_env_switch(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ESCALATION_GUARD_HASH_CACHE", "off")
    assert default_cache_path() is None
    monkeypatch.setenv("ESCALATION_GUARD_HASH_CACHE", str(tmp_path / "x.json"))
    assert default_cache_path() == tmp_path / "x.json"
    monkeypatch.delenv("ESCALATION_GUARD_HASH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_path() == tmp_path / "escalation-guard" / "verified-hashes.json"
