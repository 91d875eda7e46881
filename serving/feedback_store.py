"""The feedback file: one JSON object per line, appended durably, never torn, never duplicated by a retry.

Why each rule:
- A record is acknowledged only after it is on disk (written whole, then fsync'd), so an acknowledged record
  survives a crash.
- A write that fails part-way (a full disk) is cut back off the file before the error is answered, so the
  next record is not glued to a torn line; a torn tail left by a crash mid-write (never acknowledged) is moved
  to `<file>.torn` before the next append, so nothing read from the file is lost or half a record.
- Each record has a `feedback_id`. A client that sends its own and retries after a lost answer gets
  `duplicate` instead of a second copy.
- The file has a size cap: feedback flows into training data, and no client may fill the disk.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from serving.schema import dumps_json

log = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class StoreFull(Exception):
    """The feedback file reached its size cap."""


class FeedbackStore:
    """Appends records to a JSONL file under a lock; thread-safe, one process per file."""

    def __init__(self, path: str | Path, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._ids: set[str] | None = None  # loaded on first use, so a server starts without reading the file

    def append(self, record: Mapping[str, Any]) -> bool:
        """Store `record` (which carries a `feedback_id`); False when that id is already stored.

        Raises StoreFull at the cap and OSError when the disk refuses the write (the file is left as before).
        """
        line = (dumps_json(record) + "\n").encode("utf-8")
        fid = str(record["feedback_id"])
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._ids is None:
                self._ids = self._load_ids()
            if fid in self._ids:
                return False
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                size = os.fstat(fd).st_size
                if size + len(line) > self.max_bytes:
                    raise StoreFull(f"{self.path} holds {size} bytes; the cap is {self.max_bytes}")
                self._write_whole(fd, line, size)
            finally:
                os.close(fd)
            self._ids.add(fid)
            return True

    @staticmethod
    def _write_whole(fd: int, line: bytes, size: int) -> None:
        try:
            view = memoryview(line)
            while view:
                n = os.write(fd, view)
                if n <= 0:
                    raise OSError("short write")
                view = view[n:]
            os.fsync(fd)
        except OSError:
            try:  # cut the partial record back off, so the next one starts on a line of its own
                os.ftruncate(fd, size)
            except OSError as exc:
                log.error("could not cut a partial feedback record from the file: %s", exc)
            raise

    def _load_ids(self) -> set[str]:
        """The ids already stored; a torn last line (a crash mid-write) is moved to `<file>.torn` first."""
        ids: set[str] = set()
        if not self.path.exists():
            return ids
        self._repair_tail()
        with self.path.open("rb") as fh:
            for raw in fh:
                try:
                    fid = json.loads(raw).get("feedback_id")
                except (ValueError, AttributeError, RecursionError):
                    continue
                if isinstance(fid, str):
                    ids.add(fid)
        return ids

    def _repair_tail(self) -> None:
        with self.path.open("r+b") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            start = size
            step = 4096
            while start > 0:  # find the last newline: the torn record starts after it
                lo = max(0, start - step)
                fh.seek(lo)
                chunk = fh.read(start - lo)
                k = chunk.rfind(b"\n")
                if k >= 0:
                    start = lo + k + 1
                    break
                start = lo
            fh.seek(start)
            torn = fh.read()
            with open(str(self.path) + ".torn", "ab") as out:
                out.write(torn + b"\n")
                out.flush()
                os.fsync(out.fileno())
            fh.truncate(start)
            fh.flush()
            os.fsync(fh.fileno())
        log.warning("moved a torn feedback record (%d bytes) from %s to %s.torn", len(torn), self.path, self.path)
