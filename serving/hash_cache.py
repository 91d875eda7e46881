"""A per-user record of bundle files whose sha256 was already checked, keyed by their stat identity.

Why: on a CPU without SHA extensions sha256 runs at ~400 MB/s, so checking the 91 MB fp32 model that an int8
scorer never loads costs ~0.25 s of every fresh process's start. Like git's index, we remember the digest of a
file together with its device, inode, size, mtime and ctime; a later process that finds all five unchanged
trusts the remembered digest instead of re-reading the file. Any write to the file changes its ctime (which
user space cannot set), and copying it makes a new inode, so a modified or replaced file is always re-hashed.

Racy files: a file changed twice within one timestamp tick could keep its ctime. Digests are therefore only
remembered for files whose ctime and mtime are older than `RACY_SECONDS` when hashed (git's "racy clean" rule).

The cache is an optimisation and never a reason to fail: an unreadable, corrupt or unwritable cache file is
ignored (and logged at debug level). `ESCALATION_GUARD_HASH_CACHE` names the cache file; `off` disables it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "ESCALATION_GUARD_HASH_CACHE"
RACY_SECONDS = 2.0
MAX_ENTRIES = 256
_VERSION = 1


def default_cache_path() -> Path | None:
    """`$ESCALATION_GUARD_HASH_CACHE`, else `$XDG_CACHE_HOME` (or ~/.cache)/escalation-guard/verified-hashes.json;
    None when the variable says `off` (or `0`, `false`, empty)."""
    value = os.environ.get(ENV)
    if value is not None:
        if value.strip().lower() in ("", "0", "off", "false", "no"):
            return None
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "escalation-guard" / "verified-hashes.json"


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class HashCache:
    """Digests of files, valid while the file's stat identity is unchanged. Thread-safe."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._entries: dict[str, list] = self._read()
        self._dirty = False

    @classmethod
    def default(cls) -> HashCache:
        return cls(default_cache_path())

    def _read(self) -> dict[str, list]:
        if self.path is None:
            return {}
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if raw.get("version") != _VERSION or not isinstance(raw.get("files"), dict):
                return {}
            return {k: v for k, v in raw["files"].items() if isinstance(v, list) and len(v) == 6}
        except (OSError, ValueError, AttributeError) as exc:
            if not isinstance(exc, FileNotFoundError):
                log.debug("hash cache %s ignored: %s", self.path, exc)
            return {}

    def lookup(self, file: Path, st: os.stat_result) -> str | None:
        """The remembered digest of `file` if its stat identity is the one it was hashed with."""
        if self.path is None:
            return None
        with self._lock:
            entry = self._entries.get(str(file.resolve()))
        if entry is None or entry[:5] != _identity(st):
            return None
        return entry[5] if isinstance(entry[5], str) else None

    def remember(self, file: Path, before: os.stat_result, digest: str) -> None:
        """Record `digest` for `file` hashed while its stat was `before`, unless it changed meanwhile or is
        too recent to trust its timestamps."""
        if self.path is None:
            return
        try:
            after = file.stat()
        except OSError:
            return
        now = time.time_ns()
        racy = now - max(after.st_mtime_ns, after.st_ctime_ns) < RACY_SECONDS * 1e9
        if racy or _identity(after) != _identity(before):
            return
        with self._lock:
            key = str(file.resolve())
            self._entries.pop(key, None)
            self._entries[key] = [*_identity(after), digest]
            while len(self._entries) > MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
            self._dirty = True

    def save(self) -> None:
        """Write the cache atomically (a temp file and a rename); failures are logged, never raised."""
        if self.path is None or not self._dirty:
            return
        with self._lock:
            payload = json.dumps({"version": _VERSION, "files": self._entries})
            self._dirty = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".verified-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(payload)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.debug("hash cache %s not written: %s", self.path, exc)
