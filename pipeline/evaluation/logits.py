"""PyTorch logits of the test windows, handed from `evaluate` to `export` through a file.

Why: `export` measures fp32 ONNX against PyTorch over every test window. `evaluate` has just computed those
PyTorch logits with the same checkpoint, and scoring them again cost 86 s of a 21-minute `dvc repro`. The
file carries the checkpoint's weight hash and one (conversation id, turn index) key per row, so `export`
uses it only for the checkpoint and windows it is checking, and otherwise scores with PyTorch itself. A
rendering difference between the two stages would show up as a parity failure, which is a check worth having.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from serving.bundle import sha256_file

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"


def checkpoint_fingerprint(checkpoint: str | Path) -> str:
    """sha256 of the checkpoint's weights file ("" when it has none under the usual name)."""
    p = Path(checkpoint) / WEIGHTS
    return sha256_file(p) if p.is_file() else ""


def save_test_logits(
    path: str | Path, logits: np.ndarray, keys: Sequence[tuple[str, int]], checkpoint: str | Path
) -> None:
    if len(keys) != len(logits):
        raise ValueError(f"{len(keys)} keys for {len(logits)} rows of logits")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:  # np.savez would append ".npz" to a name without it
        np.savez(
            fh,
            logits=np.asarray(logits, dtype=np.float32),
            conv_ids=np.asarray([k[0] for k in keys], dtype=str),
            turns=np.asarray([k[1] for k in keys], dtype=np.int64),
            checkpoint=np.asarray(checkpoint_fingerprint(checkpoint)),
        )


def load_test_logits(path: str | Path, keys: Sequence[tuple[str, int]], checkpoint: str | Path) -> np.ndarray | None:
    """Rows for `keys` in that order, or None (with the reason logged) if the file cannot vouch for them."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            if str(z["checkpoint"]) != checkpoint_fingerprint(checkpoint) or not str(z["checkpoint"]):
                log.info("%s: written for another checkpoint; scoring with PyTorch", path)
                return None
            index = {(str(c), int(t)): i for i, (c, t) in enumerate(zip(z["conv_ids"], z["turns"], strict=True))}
            rows = [index.get((c, int(t))) for c, t in keys]
            if any(r is None for r in rows):
                log.info("%s: does not cover every test window; scoring with PyTorch", path)
                return None
            return np.asarray(z["logits"], dtype=np.float32)[np.asarray(rows, dtype=np.int64)]
    except (OSError, ValueError, KeyError) as exc:
        log.warning("%s: unreadable (%s); scoring with PyTorch", path, exc)
        return None
