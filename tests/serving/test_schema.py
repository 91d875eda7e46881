"""Schema validation names the field of every problem; the JSONL reader accounts for every line."""

from __future__ import annotations

import json

import pytest

from serving.schema import Conversation, LineProblem, SchemaError, parse_conversation, read_jsonl


def rec(**kw):
    base = {
        "id": "c1",
        "source": "test",
        "category": "benign",
        "end_at": None,
        "turns": [{"role": "user", "text": "hi", "labels": []}, {"role": "assistant", "text": "hello", "labels": []}],
    }
    base.update(kw)
    return base


@pytest.mark.parametrize(
    ("record", "field", "needle"),
    [
        ([], "", "JSON object"),
        (rec(id=""), "id", "missing"),
        (rec(turns=[]), "turns", "empty"),
        (rec(turns="hi"), "turns", "list"),
        (rec(turns=[{"role": "bot", "text": "x"}]), "turns[0].role", "unknown role"),
        (rec(turns=[{"role": "user", "text": "  "}]), "turns[0].text", "empty"),
        (rec(turns=[{"role": "user"}]), "turns[0].text", "missing"),
        (rec(turns=[{"role": "user", "text": "x", "labels": ["spam"]}]), "turns[0].labels[0]", "unknown label"),
        (rec(turns=[{"role": "assistant", "text": "x", "labels": ["abuse"]}]), "turns[0].labels[0]", "does not apply"),
        (rec(end_at=1), "end_at", "assistant"),
        (rec(end_at=7), "end_at", "outside"),
        (rec(end_at="1"), "end_at", "integer"),
    ],
)
def test_problems_name_their_field(record, field, needle) -> None:
    with pytest.raises(SchemaError) as info:
        parse_conversation(record)
    assert info.value.field == field and needle in info.value.message


def test_training_records_need_labels_and_category() -> None:
    with pytest.raises(SchemaError, match="category"):
        parse_conversation(rec(category=None), require_labels=True)
    with pytest.raises(SchemaError, match=r"turns\[0\].labels"):
        parse_conversation(rec(turns=[{"role": "user", "text": "x"}]), require_labels=True)
    assert not parse_conversation(rec(turns=[{"role": "user", "text": "x"}])).labelled


def test_round_trip() -> None:
    c = parse_conversation(rec())
    assert parse_conversation(c.to_dict()) == c


def test_reader_accounts_for_every_line(tmp_path) -> None:
    p = tmp_path / "in.jsonl"
    lines = [json.dumps(rec()).encode(), b"{not json", b"\xff\xfe bad bytes", b"", json.dumps(rec(id="")).encode()]
    p.write_bytes(b"\n".join(lines) + b"\n")
    out = list(read_jsonl(p))
    assert [type(o) for o in out] == [Conversation, LineProblem, LineProblem, LineProblem]
    assert [o.line for o in out[1:]] == [2, 3, 5]
    assert "malformed JSON" in out[1].reason and "UTF-8" in out[2].reason and out[3].field == "id"
    assert str(out[1]).startswith(f"{p}:2:")


def test_empty_file(tmp_path) -> None:
    p = tmp_path / "empty.jsonl"
    p.write_bytes(b"")
    assert list(read_jsonl(p)) == []
