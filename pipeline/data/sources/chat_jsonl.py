"""Chat JSONL as chat APIs export it -> conversation records.

Each line: `{"messages": [{"role": "user", "content": "..."}, ...], "id"?: ..., "category"?: ..., "end_at"?: ...}`.
`content` may be a string or a list of parts (`[{"type": "text", "text": "..."}]`: the text parts are joined).
Labels are optional, per message (`"labels": [...]`) or as a top-level list aligned with `messages`. A record
whose every message carries labels is fully labelled; otherwise `meta.labelled_turns` lists the messages that
do (possibly none). Roles pass through unchanged: `prepare` quarantines unknown ones (e.g. `tool`) with the
reason, so nothing disappears here. Options: `path` (a file or a folder of `*.jsonl`), `category` (default for
records without one: `chat`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pipeline.data.sources.base import SourceSpec, invalid_record, iter_jsonl

DEFAULT_CATEGORY = "chat"


def _content_text(content: Any) -> Any:
    """A string stays; a list of parts becomes their joined text; anything else passes through (prepare rejects)."""
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type", "text") == "text"]
        if parts and all(isinstance(p, str) for p in parts):
            return "\n".join(parts)
    return content


def convert(obj: Any, file: str, line: int, default_category: str = DEFAULT_CATEGORY) -> dict[str, Any]:
    """One decoded line -> a raw record (or an `invalid_record` naming what is wrong)."""
    if not isinstance(obj, dict):
        return invalid_record(file, line, f"record must be a JSON object, got {type(obj).__name__}", str(obj))
    messages = obj.get("messages")
    if not isinstance(messages, list):
        reason = "missing" if messages is None else f"must be a list, got {type(messages).__name__}"
        return invalid_record(file, line, reason, str(obj)[:2000], field_path="messages")
    top_labels = obj.get("labels")
    turns: list[dict[str, Any]] = []
    labelled: list[int] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            return invalid_record(file, line, "message must be an object", str(obj)[:2000], f"messages[{i}]")
        turn: dict[str, Any] = {"role": m.get("role"), "text": _content_text(m.get("content"))}
        labels = m.get("labels")
        if labels is None and isinstance(top_labels, list) and i < len(top_labels):
            labels = top_labels[i]
        if labels is not None:
            turn["labels"] = labels
            labelled.append(i)
        else:
            turn["labels"] = []
        turns.append(turn)
    meta = dict(obj.get("meta") or {}) if isinstance(obj.get("meta") or {}, dict) else obj.get("meta")
    if isinstance(meta, dict):
        meta.update({"file": str(file), "line": line})
        if len(labelled) < len(turns):
            meta["labelled_turns"] = labelled
    record_id = obj.get("id")
    return {
        "id": record_id if record_id is not None else f"line-{line}",
        "source": "chat_jsonl",
        "turns": turns,
        "end_at": obj.get("end_at"),
        "category": obj.get("category", default_category),
        "meta": meta,
    }


def read(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    """Adapter entry point for `ingest` (kind `chat_jsonl`)."""
    category = str(spec.options.get("category", DEFAULT_CATEGORY))
    for file, line, obj in iter_jsonl(spec.path()):
        if isinstance(obj, dict) and "_invalid" in obj:
            yield obj
        else:
            yield convert(obj, str(file), line, category)
