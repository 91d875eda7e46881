"""Fast JSON lines for the data stages: orjson when installed (5-10x faster than the stdlib), same results.

Also `paused_gc`: the stages build lists of ~1M small dicts, and CPython's cyclic collector rescans them again
and again as they grow (it more than doubled `split`'s time at 100k conversations); nothing here makes cycles.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson comes with dvc, but the stages must not depend on it
    orjson = None


def loads(data: bytes | str) -> Any:
    """Decode one JSON document; raises json.JSONDecodeError with the stdlib's message on bad input.

    orjson refuses lone surrogate escapes (`"\\ud800"`) that the stdlib accepts; those fall back to the stdlib,
    and `prepare` rejects the text later because it cannot be encoded as UTF-8.
    """
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def dumps_line(obj: Any) -> bytes:
    """One JSON line (UTF-8, not ASCII-escaped, newline-terminated)."""
    if orjson is not None:
        try:
            return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:
            pass
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")


@contextmanager
def paused_gc() -> Iterator[None]:
    """Turn the cyclic garbage collector off for a bulk load (reference counting still frees memory)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
