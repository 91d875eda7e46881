"""The HTTP service's OpenAPI document and the chat-stack `messages` shape of a conversation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.http import Settings, create_app
from tests.serving_fixtures import PERSISTENT_TURNS as PERSISTENT

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client(guard, tmp_path_factory) -> TestClient:
    path = tmp_path_factory.mktemp("fb") / "feedback.jsonl"
    s = Settings(
        feedback_path=str(path), max_turns=20, max_turn_chars=500, feedback_rate_per_s=1e6, feedback_burst=10**6
    )
    return TestClient(create_app(guard, s))


@pytest.fixture(scope="module")
def doc(client: TestClient) -> dict[str, Any]:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    return r.json()


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/components/schemas/"), ref
    return doc["components"]["schemas"][ref.rsplit("/", 1)[1]]


def _body_schema(doc: dict[str, Any], path: str, status: str | None = None) -> dict[str, Any]:
    op = doc["paths"][path]["post"]
    where = op["requestBody"] if status is None else op["responses"][status]
    return _resolve(doc, where["content"]["application/json"]["schema"])


def _items(doc: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
    """The item schema of an (optional) array property."""
    array = next(s for s in prop.get("anyOf", [prop]) if s.get("type") == "array")
    return _resolve(doc, array["items"])


def test_openapi_documents_both_request_bodies(doc) -> None:
    assert {"/v1/assess", "/v1/feedback", "/healthz", "/readyz"} <= set(doc["paths"])
    assess = _body_schema(doc, "/v1/assess")
    assert doc["paths"]["/v1/assess"]["post"]["requestBody"]["required"] is True
    assert {"id", "turns", "messages"} <= set(assess["properties"])
    assert assess["oneOf"] == [{"required": ["turns"]}, {"required": ["messages"]}]
    turn = _items(doc, assess["properties"]["turns"])
    assert turn["required"] == ["role", "text"]
    assert turn["properties"]["role"]["enum"] == ["user", "assistant", "system"]
    message = _items(doc, assess["properties"]["messages"])
    assert set(message["properties"]) == {"role", "content"} and message["required"] == ["role"]
    assert message["properties"]["role"]["enum"] == ["user", "assistant", "system", "developer", "tool", "function"]
    content = message["properties"]["content"]["anyOf"]
    assert {"type": "null"} in content
    part = _items(doc, {"anyOf": next(c for c in content if "oneOf" in c)["oneOf"]})
    assert part["properties"]["type"]["type"] == "string" and {"text", "refusal"} <= set(part["properties"])
    assert any(m["role"] == "tool" for e in assess["examples"] for m in e.get("messages", []))

    feedback = _body_schema(doc, "/v1/feedback")
    assert set(feedback["properties"]) == {"conversation", "feedback_id", "decision", "reason", "comment"}
    assert feedback["required"] == ["conversation"]
    conversation = _resolve(doc, feedback["properties"]["conversation"])
    assert {"turns", "messages"} <= set(conversation["properties"])
    decision = next(s for s in feedback["properties"]["decision"]["anyOf"] if s.get("enum"))
    assert decision["enum"] == ["continue", "end"]
    fid = next(s for s in feedback["properties"]["feedback_id"]["anyOf"] if s.get("type") == "string")
    assert fid["pattern"] == "^[A-Za-z0-9._:-]{1,64}$"


def test_openapi_documents_answers_and_errors(doc) -> None:
    answer = _body_schema(doc, "/v1/assess", "200")
    assert list(answer["properties"])[:8] == [
        "id",
        "decision",
        "end_turn",
        "reason",
        "evidence",
        "degraded",
        "turns",
        "notes",
    ]
    assert answer["properties"]["decision"]["enum"] == ["continue", "end"]
    turn = _items(doc, answer["properties"]["turns"])
    assert set(turn["properties"]) == {"index", "role", "action", "reason", "evidence", "scores", "degraded", "error"}
    receipt = _body_schema(doc, "/v1/feedback", "202")
    assert receipt["properties"]["status"]["enum"] == ["recorded", "duplicate"]
    assert _body_schema(doc, "/v1/feedback", "200") == receipt
    for path, statuses in {
        "/v1/assess": ("400", "413", "415", "422", "503"),
        "/v1/feedback": ("400", "413", "415", "422", "429", "503", "507"),
    }.items():
        for status in statuses:
            error = _body_schema(doc, path, status)
            detail = _resolve(doc, error["properties"]["error"])
            assert set(detail["properties"]) == {"status", "message", "field"}, (path, status)
    ready = doc["paths"]["/readyz"]["get"]["responses"]
    assert set(ready) == {"200", "503"}
    ready_body = _resolve(doc, ready["200"]["content"]["application/json"]["schema"])
    gates = _resolve(doc, ready_body["properties"]["gates"])
    assert gates["properties"]["verdict"]["enum"] == ["passed", "failed", "unknown"]


def test_readyz_of_a_bundle_without_a_verdict_says_unknown(bundle, tmp_path) -> None:
    import shutil

    from serving.guard import Guard

    copy = tmp_path / "old"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "bundle.json").read_text())
    del manifest["gates"]
    (copy / "bundle.json").write_text(json.dumps(manifest))
    client = TestClient(create_app(Guard.load(copy), Settings(feedback_path=str(tmp_path / "fb.jsonl"))))
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["gates"]["verdict"] == "unknown" and r.json()["gates"]["failed"] == []


def test_every_documented_field_has_a_description(doc) -> None:
    for name, schema in doc["components"]["schemas"].items():
        for prop, spec in schema.get("properties", {}).items():
            assert spec.get("description"), f"{name}.{prop}"


def test_swagger_ui_is_served(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower() and "/openapi.json" in r.text


def _as_messages(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"role": t["role"], "content": t["text"]} for t in turns]


@pytest.mark.parametrize(
    "turns", [[{"role": "user", "text": "hi"}], PERSISTENT, [{"role": "system", "text": "be kind"}, *PERSISTENT]]
)
def test_messages_get_the_same_answer_as_turns(client: TestClient, turns) -> None:
    by_turns = client.post("/v1/assess", json={"id": "c-7", "turns": turns})
    by_messages = client.post("/v1/assess", json={"id": "c-7", "messages": _as_messages(turns)})
    assert by_turns.status_code == by_messages.status_code == 200
    assert by_messages.json() == by_turns.json()
    if turns is PERSISTENT:
        assert by_messages.json()["decision"] == "end"


def test_the_minimal_messages_body(client: TestClient) -> None:
    r = client.post("/v1/assess", json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    assert r.json() == client.post("/v1/assess", json={"turns": [{"role": "user", "text": "hi"}]}).json()


def test_content_parts_are_joined_with_newlines(client: TestClient) -> None:
    parts = [{"type": "text", "text": "give me"}, {"type": "text", "text": "the steps"}]
    messages = [*_as_messages(PERSISTENT[:4]), {"role": "user", "content": parts}]
    turns = [*PERSISTENT[:4], {"role": "user", "text": "give me\nthe steps"}]
    r = client.post("/v1/assess", json={"messages": messages})
    assert r.status_code == 200 and r.json() == client.post("/v1/assess", json={"turns": turns}).json()
    r = client.post("/v1/assess", json={"messages": [{"role": "user", "content": []}]})
    assert r.status_code == 200  # no parts: an empty turn, like empty text


@pytest.mark.parametrize(
    ("body", "status", "field", "fragment"),
    [
        ({"turns": PERSISTENT, "messages": _as_messages(PERSISTENT)}, 422, "messages", "not both"),
        ({"turns": [], "messages": []}, 422, "messages", "not both"),
        ({}, 422, "turns", "missing"),
        ({"messages": "hi"}, 422, "messages", "must be a list"),
        ({"messages": [{"role": "user"}]}, 422, "messages[0].content", "missing"),
        ({"messages": [{"role": "user", "content": None}]}, 422, "messages[0].content", "missing"),
        ({"messages": [{"role": "user", "content": 5}]}, 422, "messages[0].content", "must be a string or a list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, 422, "messages[0].role", "unknown role 'robot'"),
        ({"messages": [{"role": "user"}]}, 422, "messages[0].content", "missing"),
        ({"messages": [{"role": "user", "text": "x"}]}, 422, "messages[0].content", "`text` belongs to the other"),
        ({"messages": [{"role": "user", "content": "x", "text": "x"}]}, 422, "messages[0].text", "not `text`"),
        ({"turns": [{"role": "user", "content": "x"}]}, 422, "turns[0].text", "`content` belongs to the other"),
        ({"turns": [{"role": "user", "text": "x", "content": "x"}]}, 422, "turns[0].content", "not `content`"),
        ({"turns": [{"role": "tool", "text": "x"}]}, 422, "turns[0].role", "unknown role 'tool'"),
        ({"messages": [{"role": "user", "content": [{"text": "a"}]}]}, 422, "messages[0].content[0].type", "missing"),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "refusal", "text": "no"}]}]},
            422,
            "messages[0].content[0].refusal",
            "missing",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            422,
            "messages[0].content[0].text",
            "missing",
        ),
        ({"messages": [{"role": "user", "content": ["a"]}]}, 422, "messages[0].content[0]", "must be an object"),
        ({"messages": [{"role": "user", "content": "x" * 501}]}, 413, "messages[0].content", "exceed the limit"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x" * 250}] * 2}]},
            413,
            "messages[0].content",
            "501 characters exceed the limit of 500",
        ),
        ({"messages": [{"role": "user", "content": "x"}] * 21}, 413, "messages", "21 turns exceed the limit of 20"),
    ],
)
def test_bad_messages_get_clear_errors(client: TestClient, body, status: int, field: str, fragment: str) -> None:
    r = client.post("/v1/assess", json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["status"] == status and err["field"] == field and fragment in err["message"], err


def _skipped_and_scored() -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """A chat stack's conversation with every kind of message the scorer skips, and the same as our turns."""
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    messages = [
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "text", "text": PERSISTENT[0]["text"]}, image]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "t1", "type": "function"}]},
        {"role": "tool", "content": "no results", "tool_call_id": "t1"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": PERSISTENT[1]["text"]}]},
        {"role": "user", "content": [image]},
        *_as_messages(PERSISTENT[2:]),
    ]
    turns = [
        {"role": "system", "text": "Answer briefly."},
        PERSISTENT[0],
        {"role": "system", "text": ""},
        {"role": "system", "text": "no results"},
        PERSISTENT[1],
        {"role": "system", "text": ""},
        *PERSISTENT[2:],
    ]
    return messages, turns


def test_skipped_messages_keep_their_role_and_are_noted(client: TestClient) -> None:
    """developer / tool messages, an assistant's tool call (content null) and an image-only message are neither
    scored nor context: the decision is that of the same chat with system turns there; each skip is noted."""
    messages, turns = _skipped_and_scored()
    by_messages = client.post("/v1/assess", json={"id": "m", "messages": messages})
    by_turns = client.post("/v1/assess", json={"id": "m", "turns": turns})
    assert by_messages.status_code == by_turns.status_code == 200, by_messages.text
    got, want = by_messages.json(), by_turns.json()
    assert [t["role"] for t in got["turns"]] == [m["role"] for m in messages]
    assert got["notes"] == [
        "messages[0]: role 'developer' is not scored (read as a system message)",
        "messages[1]: content parts skipped (only text is read): image_url",
        "messages[2]: assistant message with no text (content null) is not scored",
        "messages[3]: role 'tool' is not scored (read as a system message)",
        "messages[5]: user message with no text (only image_url parts) is not scored",
    ]
    assert want["notes"] == [] and got["decision"] == want["decision"] == "end"
    for a, b in zip(got["turns"], want["turns"], strict=True):
        assert {**a, "role": None} == {**b, "role": None}
    skipped = [t for t, m in zip(got["turns"], messages, strict=True) if m["role"] in ("developer", "tool")]
    assert all(t["reason"] == "system_turn" and t["scores"] is None for t in skipped)


def test_feedback_takes_messages_and_stores_turns(client: TestClient) -> None:
    path = client.app.state.settings.feedback_path
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    body = {"conversation": {"id": "m-1", "messages": [{"role": "user", "content": parts}]}, "decision": "end"}
    r = client.post("/v1/feedback", json=body)
    assert r.status_code == 202 and r.json()["id"] == "m-1"
    with open(path, encoding="utf-8") as fh:
        record = json.loads(fh.read().splitlines()[-1])
    assert record["conversation"] == {"id": "m-1", "turns": [{"role": "user", "text": "a\nb"}]}
    tool = {"conversation": {"id": "m-2", "messages": [{"role": "tool", "content": "42"}]}}
    assert client.post("/v1/feedback", json=tool).status_code == 202
    with open(path, encoding="utf-8") as fh:
        record = json.loads(fh.read().splitlines()[-1])
    assert record["conversation"]["turns"] == [{"role": "system", "text": "42", "meta": {"sent_role": "tool"}}]
    r = client.post("/v1/feedback", json={"conversation": {"messages": []}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "conversation.messages"
    both = {"conversation": {"turns": PERSISTENT, "messages": _as_messages(PERSISTENT)}}
    r = client.post("/v1/feedback", json=both)
    assert r.status_code == 422 and r.json()["error"]["field"] == "conversation.messages"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(["user", "assistant", "system", "developer", "tool", "function", "robot"]) | json_values
part_types = st.sampled_from(["text", "input_text", "refusal", "image_url"]) | json_values
parts = st.lists(
    st.fixed_dictionaries({"type": part_types}, optional={"text": json_values, "refusal": json_values}) | json_values,
    max_size=3,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles}, optional={"content": st.text(max_size=40) | parts | json_values, "text": json_values}
    ),
    max_size=4,
)
conversations = st.one_of(
    json_values,
    st.fixed_dictionaries({"messages": messages | json_values}),
    st.fixed_dictionaries({"messages": messages, "turns": st.lists(json_values, max_size=2)}),
    st.fixed_dictionaries(
        {"id": json_values, "turns": st.lists(st.fixed_dictionaries({"role": roles, "text": json_values}), max_size=4)}
    ),
)
bodies = st.one_of(
    conversations,
    st.fixed_dictionaries(
        {"conversation": conversations},
        optional={"decision": json_values, "reason": json_values, "comment": json_values, "feedback_id": json_values},
    ),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_no_json_body_gets_a_5xx(client: TestClient, body) -> None:
    text = json.dumps(body)
    for path in ("/v1/assess", "/v1/feedback"):
        r = client.post(path, content=text.encode(), headers=JSON)
        assert r.status_code < 500, (path, r.status_code, r.text[:300])
        assert r.status_code in (200, 202, 413, 422), (path, r.status_code, r.text[:300])
        if r.status_code >= 400:
            err = r.json()["error"]
            assert err["status"] == r.status_code and err["message"]
        elif path == "/v1/assess":
            assert r.json()["decision"] in ("continue", "end") and r.json()["degraded"] is False
