"""Reading and writing the split files (Parquet via 🤗 datasets).

Nested turns are stored as a list of structs; `meta` dicts are stored as JSON
strings because their keys differ between sources and Arrow needs one schema.
Only writing imports 🤗 datasets: reading is plain pyarrow, so `train` runs where datasets is not
installed (a bare GPU image, say).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from serving.schema import Conversation, Turn, parse_conversation

SPLITS: tuple[str, ...] = ("train", "valid", "test")


def _features():
    """The split schema (a function so that reading a split does not import datasets)."""
    from datasets import Features, List, Value

    return Features(
        {
            "id": Value("string"),
            "source": Value("string"),
            "category": Value("string"),
            "end_at": Value("int32"),
            "turns": List(
                {
                    "role": Value("string"),
                    "text": Value("string"),
                    "labels": List(Value("string")),
                    "meta": Value("string"),
                }
            ),
            "meta": Value("string"),
        }
    )


def _row(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id,
        "source": c.source,
        "category": c.category,
        "end_at": c.end_at,
        "turns": [
            {"role": t.role, "text": t.text, "labels": list(t.labels), "meta": json.dumps(dict(t.meta))}
            for t in c.turns
        ],
        "meta": json.dumps(dict(c.meta), sort_keys=True),
    }


def write_split(conversations: Iterable[Conversation], path: str | Path) -> int:
    """Write conversations to one Parquet file; returns the row count."""
    from datasets import Dataset
    from datasets.utils import disable_progress_bars

    rows = [_row(c) for c in conversations]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    features = _features()
    ds = (
        Dataset.from_list(rows, features=features)
        if rows
        else Dataset.from_dict({k: [] for k in features}, features=features)
    )
    disable_progress_bars()
    ds.to_parquet(str(path))
    return len(rows)


def read_split(path: str | Path) -> list[Conversation]:
    """Read a split back into validated Conversations (the schema is checked again: cheap, and catches drift)."""
    # pyarrow directly: Dataset.from_parquet goes through a builder cache under ~/.cache that we do not want.
    table = pq.read_table(str(path))
    out: list[Conversation] = []
    for row in table.to_pylist():
        record = {
            **row,
            "meta": json.loads(row["meta"] or "{}"),
            "turns": [{**t, "meta": json.loads(t["meta"] or "{}")} for t in row["turns"]],
        }
        out.append(parse_conversation(record))
    return out


def split_path(splits_dir: str | Path, name: str) -> Path:
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}")
    return Path(splits_dir) / f"{name}.parquet"


__all__ = ["SPLITS", "Turn", "read_split", "split_path", "write_split"]
