"""Feedback the HTTP service appends (POST /v1/feedback) -> conversation records.

Each line: `{"received_at", "conversation": {"id", "turns": [{"role", "text"}]}, "decision", "reason", "comment"}`.
The conversation is kept as the user saw it (labels unknown: `meta.labelled_turns = []`), with category
`user_feedback` and the decision, reason, comment and time in `meta`. One conversation branch can be reported
more than once as it grows, so the record id is `<conversation id>@<line>`; exact repeats are removed by
`prepare`'s content-hash dedup.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pipeline.data.sources.base import SourceSpec, invalid_record, iter_jsonl

CATEGORY = "user_feedback"


def convert(obj: Any, file: str, line: int) -> dict[str, Any]:
    if not isinstance(obj, dict):
        return invalid_record(file, line, f"record must be a JSON object, got {type(obj).__name__}", str(obj))
    conv = obj.get("conversation")
    if not isinstance(conv, dict):
        reason = "missing" if conv is None else "must be an object"
        return invalid_record(file, line, reason, str(obj)[:2000], field_path="conversation")
    turns_raw = conv.get("turns")
    turns = (
        [{"role": t.get("role"), "text": t.get("text"), "labels": []} if isinstance(t, dict) else t for t in turns_raw]
        if isinstance(turns_raw, list)
        else turns_raw
    )
    conv_id = conv.get("id")
    return {
        "id": f"{conv_id}@{line}" if conv_id not in (None, "") else f"line-{line}",
        "source": "feedback",
        "turns": turns,
        "end_at": None,
        "category": CATEGORY,
        "meta": {
            "conversation_id": conv_id,
            "received_at": obj.get("received_at"),
            "decision": obj.get("decision"),
            "reason": obj.get("reason"),
            "comment": obj.get("comment"),
            "labelled_turns": [],
            "file": str(file),
            "line": line,
        },
    }


def read(spec: SourceSpec) -> Iterator[dict[str, Any]]:
    """Adapter entry point for `ingest` (kind `feedback`)."""
    for file, line, obj in iter_jsonl(spec.path()):
        yield obj if isinstance(obj, dict) and "_invalid" in obj else convert(obj, str(file), line)
