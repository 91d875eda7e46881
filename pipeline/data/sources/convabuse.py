"""ConvAbuse (Cercas Curry et al., EMNLP 2021) CSV -> conversation records.

Each CSV row becomes one short conversation: its non-empty cells `prev_agent, prev_user, agent, user` as
assistant/user/assistant/user turns. Only the last user turn (the one the annotators judged) has known labels:
`["abuse"]` when the majority of the row's annotators chose -1/-2/-3, else `[]`. The earlier turns' labels are
unknown, so the record says `meta.labelled_turns = [index of the last turn]` (see pipeline/sources/base.py).

Votes: each annotator gets one vote; a cell such as `"0, 1"` (the same annotator twice) counts as the mean of
the repeats, so an annotator's abusive share is mean(-1) + mean(-2) + mean(-3). The row is abusive when the sum
of shares is strictly more than half the annotators (ties are not abusive). This reproduces the dataset's
published balance: train 338 abusive of 2,501 rows, valid 112 of 831.

Known quirks handled here (and counted by `summarize`): repeated annotations in a cell; duplicate header names
(`Annotator6_transphobic` for annotators 7 and 8: columns are read by position, only `*_is_abuse.*` are used);
`conv_id`s mangled into scientific notation (`2.62733E+15`) which may merge conversations and cannot be repaired:
kept as they are and flagged `meta.conv_id_mangled`; float-looking ids (`164070.0`) are normalised to `164070`.

`python -m pipeline.data.sources.convabuse DIR` prints the per-split label balance.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

FILES: dict[str, str] = {"train": "ConvAbuseEMNLPtrain.csv", "valid": "ConvAbuseEMNLPvalid.csv"}
TURN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("prev_agent", "assistant"),
    ("prev_user", "user"),
    ("agent", "assistant"),
    ("user", "user"),
)
VOTE_VALUES: tuple[str, ...] = ("1", "0", "-1", "-2", "-3")
ABUSIVE_VALUES: frozenset[str] = frozenset({"-1", "-2", "-3"})
_ANNOT_RE = re.compile(r"^Annotator(\d+)_is_abuse\.(-?\d)$")
_SCI_RE = re.compile(r"^\d+(\.\d+)?[eE][+-]?\d+$")
_FLOAT_INT_RE = re.compile(r"^(\d+)\.0+$")


class ConvAbuseError(ValueError):
    """The CSV does not have the expected layout (names the file and what is missing)."""


def _cell_mean(cell: str) -> float | None:
    """`"1"` -> 1.0, `"0, 1"` -> 0.5 (repeated annotations by one annotator), `""` -> None (not annotated)."""
    cell = cell.strip()
    if not cell:
        return None
    parts = [p.strip() for p in cell.split(",") if p.strip()]
    values = [float(p) for p in parts]
    return sum(values) / len(values)


def _normalise_id(value: str) -> tuple[str, bool]:
    """Return (id, mangled): `164070.0` -> `164070`; scientific notation is flagged, not 'repaired'."""
    value = value.strip()
    m = _FLOAT_INT_RE.match(value)
    if m:
        return m.group(1), False
    return value, bool(_SCI_RE.match(value))


def annotator_columns(header: Sequence[str]) -> dict[int, dict[str, int]]:
    """annotator number -> {vote value -> column index}, from the `AnnotatorN_is_abuse.V` headers."""
    out: dict[int, dict[str, int]] = {}
    for idx, name in enumerate(header):
        m = _ANNOT_RE.match(name.strip())
        if m:
            out.setdefault(int(m.group(1)), {})[m.group(2)] = idx
    return out


def row_votes(row: Sequence[str], annotators: dict[int, dict[str, int]]) -> tuple[int, float, int]:
    """(annotators who labelled the row, summed abusive share, cells with repeated annotations)."""
    n = 0
    abusive = 0.0
    repeats = 0
    for cols in annotators.values():
        means: dict[str, float] = {}
        for value, idx in cols.items():
            cell = row[idx] if idx < len(row) else ""
            m = _cell_mean(cell)
            if m is not None:
                means[value] = m
                repeats += "," in cell
        if not means:
            continue
        n += 1
        total = sum(means.values())
        if total > 0:
            abusive += sum(v for k, v in means.items() if k in ABUSIVE_VALUES) / total
    return n, abusive, repeats


def is_abusive(n_annotators: int, abusive_share: float) -> bool:
    """The paper's majority rule; ties (and rows nobody labelled) are not abusive."""
    return n_annotators > 0 and abusive_share > n_annotators / 2


def _split_file(root: Path, split: str) -> Path:
    """The CSV of one authors' split, refused early (ConvAbuseError) when the split is unknown or missing."""
    if split not in FILES:
        raise ConvAbuseError(f"unknown ConvAbuse split {split!r} (expected {', '.join(FILES)})")
    file = root / FILES[split]
    if not file.exists():
        raise ConvAbuseError(f"{file}: not found")
    return file


def _new_split_stats() -> dict[str, Any]:
    """The per-split counters `summarize` reports, all at zero (the keys in the order they are printed)."""
    return {
        "rows": 0,
        "abusive": 0,
        "unannotated_rows": 0,
        "repeated_annotation_cells": 0,
        "mangled_conv_ids": 0,
        "empty_turn_cells": 0,
        "rows_without_user_turn": 0,
    }


def _read_header(
    reader: Iterator[list[str]], file: Path, st: dict[str, Any]
) -> tuple[dict[str, int], dict[int, dict[str, int]]]:
    """(column name -> index, annotator columns) from the header row; ConvAbuseError when a column is missing."""
    try:
        header = next(reader)
    except StopIteration:
        raise ConvAbuseError(f"{file}: empty file") from None
    col = {name.strip(): i for i, name in reversed(list(enumerate(header)))}  # first occurrence wins
    missing = [c for c, _ in TURN_COLUMNS if c not in col] + [c for c in ("example_id", "conv_id") if c not in col]
    annotators = annotator_columns(header)
    if missing or not annotators:
        raise ConvAbuseError(f"{file}: missing column(s) {', '.join(missing) or 'AnnotatorN_is_abuse.*'}")
    st["duplicate_header_names"] = len(header) - len({name.strip() for name in header})
    return col, annotators


def _row_turns(row: Sequence[str], col: Mapping[str, int], st: dict[str, Any]) -> list[dict[str, Any]]:
    """The row's non-empty turn cells as unlabelled turns, counting the empty ones."""
    turns: list[dict[str, Any]] = []
    for column, role in TURN_COLUMNS:
        text = row[col[column]] if col[column] < len(row) else ""
        if not text.strip():
            st["empty_turn_cells"] += 1
            continue
        turns.append({"role": role, "text": text, "labels": []})
    return turns


def _row_record(
    split: str,
    file: Path,
    rowno: int,
    row: Sequence[str],
    col: Mapping[str, int],
    annotators: dict[int, dict[str, int]],
    st: dict[str, Any],
) -> dict[str, Any]:
    """One CSV row as a conversation record, its last user turn labelled by the annotators' majority."""
    short = [c for c in ("example_id", "conv_id", "user") if col[c] >= len(row)]
    if short:  # a truncated row: a damaged file, not a record to guess at
        raise ConvAbuseError(f"{file}:{rowno}: row has {len(row)} cells, no {', '.join(short)}")
    st["rows"] += 1
    example_id, _ = _normalise_id(row[col["example_id"]])
    conv_id, mangled = _normalise_id(row[col["conv_id"]])
    turns = _row_turns(row, col, st)
    n, share, repeats = row_votes(row, annotators)
    abusive = is_abusive(n, share)
    st["abusive"] += abusive
    st["unannotated_rows"] += n == 0
    st["repeated_annotation_cells"] += repeats
    st["mangled_conv_ids"] += mangled
    last_user = max((i for i, t in enumerate(turns) if t["role"] == "user"), default=None)
    labelled: list[int] = []
    if last_user is not None and row[col["user"]].strip():
        turns[last_user]["labels"] = ["abuse"] if abusive else []
        labelled = [last_user]
    else:
        st["rows_without_user_turn"] += 1
    bot_idx = col.get("bot")
    return {
        "id": f"{split}-{example_id}",
        "source": "convabuse",
        "turns": turns,
        "end_at": None,
        "category": "abuse" if abusive else "benign",
        "meta": {
            "conv_id": conv_id,
            "conv_id_mangled": mangled,
            "example_id": example_id,
            "original_split": split,
            "bot": row[bot_idx] if bot_idx is not None and bot_idx < len(row) else None,
            "labelled_turns": labelled,
            "annotators": n,
            "abuse_share": round(share, 4),
            "file": file.name,
            "line": rowno,
        },
    }


def read_convabuse(
    path: str | Path, splits: Sequence[str] = ("train", "valid"), *, stats: dict[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """Yield one record per CSV row of the given authors' splits (ids `train-<example_id>`, `valid-...`).

    `stats`, when given, is filled with per-split counts and the quirks met (see `summarize`).
    """
    root = Path(path)
    for split in splits:
        file = _split_file(root, split)
        st = _new_split_stats()
        with file.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            col, annotators = _read_header(reader, file, st)
            for rowno, row in enumerate(reader, start=2):
                if not any(c.strip() for c in row):
                    continue
                yield _row_record(split, file, rowno, row, col, annotators, st)
        if stats is not None:
            stats[split] = st


def read(spec: Any) -> Iterator[dict[str, Any]]:
    """Adapter entry point for `ingest` (kind `convabuse`: `path`, optional `splits`)."""
    from pipeline.common.config import ConfigError

    splits = spec.options.get("splits", list(FILES))
    if isinstance(splits, str):
        splits = [splits]
    try:
        yield from read_convabuse(spec.path(), splits)
    except ConvAbuseError as exc:
        raise ConfigError(f"source {spec.name!r}: {exc}") from None


def summarize(path: str | Path, splits: Sequence[str] = ("train", "valid")) -> dict[str, Any]:
    """Label balance and quirk counts per split (what `python -m pipeline.data.sources.convabuse DIR` prints)."""
    stats: dict[str, Any] = {}
    conv_ids: dict[str, set[str]] = {}
    for rec in read_convabuse(path, splits, stats=stats):
        conv_ids.setdefault(rec["meta"]["original_split"], set()).add(rec["meta"]["conv_id"])
    for split, ids in conv_ids.items():
        stats[split]["conversations"] = len(ids)
        stats[split]["abusive_fraction"] = round(stats[split]["abusive"] / max(stats[split]["rows"], 1), 4)
    if len(conv_ids) > 1:
        sets = list(conv_ids.values())
        stats["conv_ids_in_several_splits"] = len(set.intersection(*sets))
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m pipeline.data.sources.convabuse DIR", file=sys.stderr)
        return 2
    try:
        print(json.dumps(summarize(args[0]), indent=2))
    except ConvAbuseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
