"""The conversation record (DESIGN.md) and its validation.

One module for every reader (pipeline stages, the CLI, the HTTP service) so a
record that is valid for training is valid for scoring, and every problem is
reported with the exact field that caused it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.labels import LABELS_BY_ROLE, MODEL_LABELS, ROLES


class SchemaError(ValueError):
    """A record does not match the schema; `field` is a JSON-path-like location."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{field_path}: {message}" if field_path else message)
        self.field = field_path
        self.message = message


@dataclass(frozen=True)
class Turn:
    role: str
    text: str
    labels: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "text": self.text, "labels": list(self.labels)}
        if self.meta:
            out["meta"] = dict(self.meta)
        return out


@dataclass(frozen=True)
class Conversation:
    id: str
    turns: tuple[Turn, ...]
    source: str = "unknown"
    end_at: int | None = None
    category: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    #: False when the record carried no `labels` at all (scoring-only input).
    labelled: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "turns": [t.to_dict() for t in self.turns],
            "end_at": self.end_at,
            "category": self.category,
            "meta": dict(self.meta),
        }


def _require_str(obj: Mapping[str, Any], key: str, path: str, *, allow_empty: bool = False) -> str:
    if key not in obj or obj[key] is None:
        raise SchemaError(f"{path}{key}", "missing")
    value = obj[key]
    if not isinstance(value, str):
        raise SchemaError(f"{path}{key}", f"must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise SchemaError(f"{path}{key}", "empty")
    return value


def parse_turn(obj: Any, path: str, *, allow_empty_text: bool = False) -> Turn:
    """Validate one turn; raises SchemaError naming the field. `allow_empty_text` is for scoring (an empty turn
    is scored as one, as over HTTP); training data refuses it."""
    if not isinstance(obj, Mapping):
        raise SchemaError(path, f"turn must be an object, got {type(obj).__name__}")
    role = _require_str(obj, "role", f"{path}.")
    if role not in ROLES:
        raise SchemaError(f"{path}.role", f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
    text = _require_str(obj, "text", f"{path}.", allow_empty=allow_empty_text)
    raw_labels = obj.get("labels", [])
    if raw_labels is None:
        raw_labels = []
    if not isinstance(raw_labels, list):
        raise SchemaError(f"{path}.labels", f"must be a list, got {type(raw_labels).__name__}")
    labels: list[str] = []
    for j, label in enumerate(raw_labels):
        if not isinstance(label, str):
            raise SchemaError(f"{path}.labels[{j}]", "must be a string")
        if label not in MODEL_LABELS:
            raise SchemaError(f"{path}.labels[{j}]", f"unknown label {label!r}")
        if label not in LABELS_BY_ROLE[role]:
            raise SchemaError(f"{path}.labels[{j}]", f"label {label!r} does not apply to role {role!r}")
        if label not in labels:
            labels.append(label)
    meta = obj.get("meta") or {}
    if not isinstance(meta, Mapping):
        raise SchemaError(f"{path}.meta", "must be an object")
    return Turn(role=role, text=text, labels=tuple(labels), meta=dict(meta))


def parse_conversation(obj: Any, *, require_labels: bool = False) -> Conversation:
    """Validate a decoded JSON record and build a Conversation.

    `require_labels` is for training data: `category` must be present and every
    turn must carry a `labels` list (an empty list means benign).
    """
    if not isinstance(obj, Mapping):
        raise SchemaError("", f"record must be a JSON object, got {type(obj).__name__}")
    conv_id = obj.get("id")
    if isinstance(conv_id, int) and not isinstance(conv_id, bool):
        conv_id = str(conv_id)
    if not isinstance(conv_id, str) or not conv_id.strip():
        raise SchemaError("id", "missing or empty" if conv_id in (None, "") else "must be a non-empty string")
    turns_raw = obj.get("turns")
    if turns_raw is None:
        raise SchemaError("turns", "missing")
    if not isinstance(turns_raw, list):
        raise SchemaError("turns", f"must be a list, got {type(turns_raw).__name__}")
    if not turns_raw:
        raise SchemaError("turns", "empty")
    turns = tuple(parse_turn(t, f"turns[{i}]") for i, t in enumerate(turns_raw))
    labelled = all(isinstance(t, Mapping) and isinstance(t.get("labels"), list) for t in turns_raw)
    if require_labels and not labelled:
        missing = next(i for i, t in enumerate(turns_raw) if not isinstance(t.get("labels"), list))
        raise SchemaError(f"turns[{missing}].labels", "missing (required for training data)")
    end_at = obj.get("end_at")
    if end_at is not None:
        if isinstance(end_at, bool) or not isinstance(end_at, int):
            raise SchemaError("end_at", f"must be an integer or null, got {type(end_at).__name__}")
        if not 0 <= end_at < len(turns):
            raise SchemaError("end_at", f"index {end_at} is outside the conversation (0..{len(turns) - 1})")
        if turns[end_at].role != "user":
            raise SchemaError("end_at", f"points at a {turns[end_at].role} turn; it must index a user turn")
    category = obj.get("category")
    if category is not None and (not isinstance(category, str) or not category.strip()):
        raise SchemaError("category", "must be a non-empty string or null")
    if require_labels and category is None:
        raise SchemaError("category", "missing (required for training data)")
    source = obj.get("source", "unknown")
    if not isinstance(source, str) or not source.strip():
        raise SchemaError("source", "must be a non-empty string")
    meta = obj.get("meta") or {}
    if not isinstance(meta, Mapping):
        raise SchemaError("meta", "must be an object")
    return Conversation(
        id=conv_id,
        turns=turns,
        source=source,
        end_at=end_at,
        category=category,
        meta=dict(meta),
        labelled=labelled,
    )


@dataclass(frozen=True)
class LineProblem:
    """A line that could not become a Conversation, with where and why."""

    path: str
    line: int
    field: str
    reason: str
    raw: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.path, "line": self.line, "field": self.field, "reason": self.reason, "raw": self.raw}

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        return f"{where}: {self.field + ': ' if self.field else ''}{self.reason}"


#: How much of a rejected line is kept in the quarantine file (the reason says why it was cut).
RAW_KEEP_CHARS = 2000


def json_lines(
    lines: Iterable[bytes], path: str, loads: Callable[[bytes], Any] = json.loads
) -> Iterator[tuple[int, str, Any]]:
    """The one JSON-lines reader: (line number, text, decoded value or LineProblem) per non-blank line.

    Takes raw byte lines (a file opened "rb", perhaps behind a progress bar) so that one non-UTF-8 line is
    reported instead of failing the file; malformed JSON, nesting too deep for the decoder and integers too
    long to convert are LineProblems too. `loads` may be a faster decoder that raises JSONDecodeError alike.
    """
    for lineno, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        try:
            text = stripped.decode("utf-8")
        except UnicodeDecodeError as exc:
            keep = stripped[:RAW_KEEP_CHARS].decode("utf-8", "replace")
            yield (
                lineno,
                keep,
                LineProblem(path, lineno, "", f"not valid UTF-8 ({exc.reason} at byte {exc.start})", keep),
            )
            continue
        try:
            yield lineno, text, loads(stripped)
        except json.JSONDecodeError as exc:
            reason = f"malformed JSON: {exc.msg} (column {exc.colno})"
            yield lineno, text, LineProblem(path, lineno, "", reason, text[:RAW_KEEP_CHARS])
        except (ValueError, RecursionError) as exc:  # too deep, or an integer too long to convert
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
            yield lineno, text, LineProblem(path, lineno, "", f"malformed JSON: {reason}", text[:RAW_KEEP_CHARS])


def read_jsonl(path: str | Path, *, require_labels: bool = False) -> Iterator[Conversation | LineProblem]:
    """Yield a Conversation or a LineProblem for every non-blank line: nothing is skipped silently."""
    p = Path(path)
    with p.open("rb") as fh:
        for lineno, text, value in json_lines(fh, str(p)):
            if isinstance(value, LineProblem):
                yield value
                continue
            try:
                yield parse_conversation(value, require_labels=require_labels)
            except SchemaError as exc:
                yield LineProblem(str(p), lineno, exc.field, exc.message, text[:RAW_KEEP_CHARS])


def dumps_json(obj: Any) -> str:
    """JSON text that always encodes as UTF-8: non-ASCII kept as is, unless a lone surrogate (valid in a
    JSON string, not in UTF-8) is somewhere in it; then everything non-ASCII is escaped, and a client's id
    comes back exactly as it was sent."""
    text = json.dumps(obj, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj)
    return text


def roles_and_texts(turns: Sequence[Turn]) -> list[tuple[str, str]]:
    return [(t.role, t.text) for t in turns]
