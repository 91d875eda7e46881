"""A conversation as callers send it: ours (`turns`: [{role, text}]) or a chat stack's (`messages`: [{role, content}]).

One set of rules for both doors, the CLI (`python -m serving score`, plain JSON, here) and the HTTP service
(serving/http_models.py, pydantic, calling `read_message` and `mixed_keys`), so that a conversation gets the
same decision whichever way it comes in:

- Exactly one of `turns` and `messages`; a turn carries `text`, a message `content` (a turn with `content` or
  a message with `text` is refused, naming the field: a mixed body is a mistake, not something to guess at).
- Message roles: `user` and `assistant` are scored. `system`, `developer`, `tool` and `function` messages are
  *skipped*: neither scored nor read as context (the scorer is trained on what users and assistants say; a
  system prompt or a tool's output is neither). Their turn in the answer keeps the role as sent, with action
  `continue` and reason `system_turn`. Any other role is refused.
- `content`: a string, or a list of parts. Text parts (`text`, `input_text`, `output_text`: their `text`;
  `refusal`: its `refusal`) are joined with newlines; other parts (images, audio, files, tool calls) cannot be
  read by a text model and are skipped. A message with no text to read (an assistant's `content: null` beside
  its tool calls, or only non-text parts) is skipped like a system message. Every skip is named in the answer's
  `notes`, one line per message, so nothing is dropped silently.
- `id` is optional at both doors; the CLI names a record without one `line-<n>` (its line in the input file).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.labels import ROLES
from serving.schema import LineProblem, SchemaError, json_lines, parse_turn
from serving.window import clean_text

#: Message roles that are accepted but not scored (read as system turns: no score, no context).
SKIPPED_ROLES: tuple[str, ...] = ("developer", "tool", "function")
MESSAGE_ROLES: tuple[str, ...] = (*ROLES, *SKIPPED_ROLES)
#: Content part types that are read, and the key that holds their text.
TEXT_PARTS: dict[str, str] = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal"}
#: The role the scorer is given for a message it skips.
SKIP_AS = "system"


@dataclass(frozen=True)
class ReadTurn:
    """One turn as the scorer sees it (`role`, `text`), the role it was sent with, and what was not read."""

    role: str
    text: str
    sent_role: str
    note: str | None = None


def mixed_keys(obj: Mapping[str, Any], shape: str) -> tuple[str, str] | None:
    """(field, message) when a turn (`shape` "turns") carries `content`, or a message `text`; else None."""
    mine, theirs = ("text", "content") if shape == "turns" else ("content", "text")
    if theirs not in obj:
        return None
    if mine not in obj:
        return mine, f"missing (a {shape[:-1]} carries `{mine}`; `{theirs}` belongs to the other shape)"
    return theirs, f"a {shape[:-1]} carries `{mine}`, not `{theirs}`: send one of them"


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def read_message(role: Any, content: Any, where: str = "") -> ReadTurn:
    """A message as a turn, or SchemaError(field, message) naming what is wrong (`where`: e.g. `messages[3]`;
    "" for fields relative to the message). `content` is plain JSON: a string, None, or a list of part objects."""
    if not isinstance(role, str):
        raise SchemaError(
            _at(where, "role"), "missing" if role is None else f"must be a string, got {type(role).__name__}"
        )
    if role not in MESSAGE_ROLES:
        raise SchemaError(
            _at(where, "role"), f"unknown role {role[:40]!r} (expected one of {', '.join(MESSAGE_ROLES)})"
        )
    if content is None and role == "user":
        raise SchemaError(_at(where, "content"), "missing")
    texts, skipped = _read_content(content, _at(where, "content"))
    text = clean_text("\n".join(texts))
    if role in SKIPPED_ROLES or role == SKIP_AS:
        note = None if role == SKIP_AS else f"role {role!r} is not scored (read as a system message)"
        return ReadTurn(SKIP_AS, text, role, note)
    if not texts and (content is None or skipped):
        what = "content null" if content is None else f"only {', '.join(skipped)} parts"
        return ReadTurn(SKIP_AS, text, role, f"{role} message with no text ({what}) is not scored")
    note = f"content parts skipped (only text is read): {', '.join(skipped)}" if skipped else None
    return ReadTurn(role, text, role, note)


def _read_content(content: Any, where: str) -> tuple[list[str], list[str]]:
    """(the texts read, the types of the parts skipped) of a message's content."""
    if content is None:
        return [], []
    if isinstance(content, str):
        return [content], []
    if not isinstance(content, list):
        raise SchemaError(where, f"must be a string or a list of parts, got {type(content).__name__}")
    texts: list[str] = []
    skipped: list[str] = []
    for j, part in enumerate(content):
        if not isinstance(part, Mapping):
            raise SchemaError(f"{where}[{j}]", f"must be an object with type and text, got {type(part).__name__}")
        kind = part.get("type")
        if not isinstance(kind, str):
            raise SchemaError(f"{where}[{j}].type", "missing" if kind is None else "must be a string")
        key = TEXT_PARTS.get(kind)
        if key is None:
            skipped.append(kind[:40])
            continue
        value = part.get(key)
        if not isinstance(value, str):
            raise SchemaError(f"{where}[{j}].{key}", "missing" if value is None else "must be a string")
        texts.append(value)
    return texts, skipped


def read_turn(obj: Any, where: str) -> ReadTurn:
    """One item of `turns` (labels and meta allowed, as in training data; empty text allowed, as over HTTP)."""
    if isinstance(obj, Mapping) and (problem := mixed_keys(obj, "turns")) is not None:
        raise SchemaError(f"{where}.{problem[0]}", problem[1])
    turn = parse_turn(obj, where, allow_empty_text=True)
    return ReadTurn(turn.role, clean_text(turn.text), turn.role)


@dataclass(frozen=True)
class ScoringRecord:
    """One conversation to score: its id (given, or `line-<n>`), its turns as read, and the notes on skips."""

    id: str
    turns: tuple[ReadTurn, ...]
    id_generated: bool = False

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(t.role, t.text) for t in self.turns]

    @property
    def notes(self) -> list[str]:
        return notes(self.turns)


def notes(turns: Sequence[ReadTurn]) -> list[str]:
    """`messages[i]: what was not read`, one line per message that was skipped or read in part."""
    return [f"messages[{i}]: {t.note}" for i, t in enumerate(turns) if t.note]


def record_id(obj: Mapping[str, Any], lineno: int) -> tuple[str, bool]:
    """(id, generated): the record's own id (a string or an integer), else `line-<lineno>`."""
    value = obj.get("id")
    if value is None:
        return f"line-{lineno}", True
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise SchemaError("id", f"must be a string or an integer, got {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise SchemaError("id", "empty (leave it out and the record is named line-<n>)")
    return str(value), False


def parse_scoring_record(obj: Any, lineno: int) -> ScoringRecord:
    """A decoded input line of `serving score` as a ScoringRecord, or SchemaError naming the field."""
    if not isinstance(obj, Mapping):
        raise SchemaError("", f"record must be a JSON object, got {type(obj).__name__}")
    conv_id, generated = record_id(obj, lineno)
    turns, messages = obj.get("turns"), obj.get("messages")
    if turns is not None and messages is not None:
        raise SchemaError("messages", "send either turns or messages, not both")
    if turns is None and messages is None:
        raise SchemaError("turns", "missing (send turns or messages)")
    shape, items = ("turns", turns) if turns is not None else ("messages", messages)
    if not isinstance(items, list):
        raise SchemaError(shape, f"must be a list, got {type(items).__name__}")
    read = tuple(
        read_turn(item, f"turns[{i}]") if shape == "turns" else _message_item(item, f"messages[{i}]")
        for i, item in enumerate(items)
    )
    return ScoringRecord(conv_id, read, generated)


def _message_item(obj: Any, where: str) -> ReadTurn:
    if not isinstance(obj, Mapping):
        raise SchemaError(where, f"message must be an object with role and content, got {type(obj).__name__}")
    if (problem := mixed_keys(obj, "messages")) is not None:
        raise SchemaError(f"{where}.{problem[0]}", problem[1])
    return read_message(obj.get("role"), obj.get("content"), where)


def read_scoring_jsonl(path: str | Path) -> Iterator[ScoringRecord | LineProblem]:
    """A ScoringRecord or a LineProblem for every non-blank line of `path`: nothing is skipped silently."""
    p = Path(path)
    with p.open("rb") as fh:
        for lineno, text, value in json_lines(fh, str(p)):
            if isinstance(value, LineProblem):
                yield value
                continue
            try:
                yield parse_scoring_record(value, lineno)
            except SchemaError as exc:
                yield LineProblem(str(p), lineno, exc.field, exc.message, text[:2000])


def with_sent_roles(answer: dict[str, Any], sent_roles: Sequence[str], notes: Sequence[str]) -> dict[str, Any]:
    """A decision's dict with each turn's role as it was sent (a skipped `tool` message stays `tool`) and the
    notes on what was skipped; the same shape from the CLI and over HTTP."""
    for turn in answer.get("turns", ()):
        if 0 <= turn["index"] < len(sent_roles):
            turn["role"] = sent_roles[turn["index"]]
    answer["notes"] = list(notes)
    return answer


def error_id(raw: str, lineno: int) -> str:
    """The id of the error record for an input line that is not a valid conversation: its own id when one can
    be read (cut to 200 characters), else `line-<lineno>`, so that every output line can be joined back."""
    try:
        obj = json.loads(raw)
        value = obj.get("id") if isinstance(obj, dict) else None
    except (ValueError, TypeError, RecursionError):  # malformed, too deep, or an integer too long
        value = None
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        return str(value)[:200]
    return f"line-{lineno}"
