"""HTTP service: contract, limits, malformed input, degraded answers, metrics, durable feedback."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.guard import Guard
from serving.http import Settings, create_app
from tests.serving_fixtures import PERSISTENT_TURNS as PERSISTENT
from tests.serving_fixtures import REPO_ROOT


@pytest.fixture(scope="module")
def service(guard, tmp_path_factory):
    feedback = tmp_path_factory.mktemp("fb") / "feedback.jsonl"
    s = Settings(
        feedback_path=str(feedback),
        max_body_bytes=200_000,
        max_turns=50,
        max_turn_chars=5_000,
        feedback_rate_per_s=1_000,  # the rate limit has its own test
        feedback_burst=1_000,
    )
    return TestClient(create_app(guard, s)), feedback


def test_assess_contract(service, guard: Guard) -> None:
    client, _ = service
    r = client.post("/v1/assess", json={"id": "c-1", "turns": PERSISTENT})
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["id", "decision", "end_turn", "reason", "evidence", "degraded", "turns", "notes"]
    want = guard.assess([(t["role"], t["text"]) for t in PERSISTENT], conv_id="c-1").to_dict()
    assert body == {**want, "notes": []}
    assert body["decision"] == "end" and body["end_turn"] == 4 and body["reason"] == "persistent_harmful"
    assert body["evidence"] == [0, 1, 2, 3, 4]
    t0 = body["turns"][0]
    assert set(t0) == {"index", "role", "action", "reason", "evidence", "scores", "degraded", "error"}
    # id is optional; empty text is a valid (benign) turn
    r = client.post("/v1/assess", json={"turns": [{"role": "user", "text": ""}]})
    assert r.status_code == 200 and r.json()["id"] is None and r.json()["decision"] == "continue"


@pytest.mark.parametrize(
    ("payload", "status", "field", "fragment"),
    [
        (b"{not json", 400, None, "malformed JSON"),
        (b"", 400, None, "empty body"),
        (b"\xff\xfe", 400, None, "not valid UTF-8"),
        (b"[1, 2]", 422, None, "body must be a JSON object"),
        (b'{"id": "x"}', 422, "turns", "missing"),
        (b'{"turns": "hello"}', 422, "turns", "must be a list"),
        (b'{"turns": [5]}', 422, "turns[0]", "must be an object"),
        (b'{"turns": [{"role": "robot", "text": "hi"}]}', 422, "turns[0].role", "unknown role"),
        (b'{"turns": [{"role": 1, "text": "hi"}]}', 422, "turns[0].role", "must be a string"),
        (b'{"turns": [{"role": "user", "text": null}]}', 422, "turns[0].text", "missing"),
        (b'{"turns": [{"role": "user", "text": ["a"]}]}', 422, "turns[0].text", "must be a string"),
        (b'{"id": {"a": 1}, "turns": []}', 422, "id", "must be a string"),
    ],
)
def test_bad_requests_get_clear_errors(service, payload: bytes, status: int, field, fragment: str) -> None:
    client, _ = service
    r = client.post("/v1/assess", content=payload, headers={"content-type": "application/json"})
    assert r.status_code == status
    err = r.json()["error"]
    assert err["field"] == field and fragment in err["message"]


def test_limits(service) -> None:
    client, _ = service
    r = client.post("/v1/assess", json={"turns": [{"role": "user", "text": "x" * 6_000}]})
    assert r.status_code == 413 and r.json()["error"]["field"] == "turns[0].text"
    r = client.post("/v1/assess", json={"turns": [{"role": "user", "text": "x"}] * 51})
    assert r.status_code == 413 and "51 turns exceed the limit of 50" in r.json()["error"]["message"]
    r = client.post(
        "/v1/assess", content=b'{"turns": []}' + b" " * 200_001, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and "exceeds the limit" in r.json()["error"]["message"]
    big = json.dumps({"turns": [{"role": "user", "text": "y" * 1_000_000}]}).encode()  # a 1 MB turn
    assert client.post("/v1/assess", content=big).status_code == 413


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        json_values,
        st.fixed_dictionaries({"turns": st.lists(json_values, max_size=4)}),
        st.fixed_dictionaries(
            {"turns": st.lists(st.fixed_dictionaries({"role": json_values, "text": json_values}), max_size=4)}
        ),
        st.fixed_dictionaries(
            {
                "turns": st.lists(
                    st.fixed_dictionaries(
                        {"role": st.sampled_from(["user", "assistant"]), "text": st.text(max_size=80)}
                    ),
                    max_size=5,
                )
            }
        ),
    )
)
def test_any_json_gets_an_answer_never_a_crash(service, body) -> None:
    client, _ = service
    r = client.post("/v1/assess", content=json.dumps(body).encode(), headers={"content-type": "application/json"})
    assert r.status_code in (200, 422, 413)
    if r.status_code == 200:
        assert r.json()["decision"] in ("continue", "end") and r.json()["degraded"] is False
    else:
        assert r.json()["error"]["message"]


def test_internal_failure_answers_continue_degraded(bundle, tmp_path: Path) -> None:
    g = Guard.load(bundle)
    client = TestClient(create_app(g, Settings(feedback_path=str(tmp_path / "fb.jsonl"))))
    g.model.run = lambda ids, mask, types: np.full((ids.shape[0], 5), np.nan, np.float32)
    r = client.post("/v1/assess", json={"turns": PERSISTENT})
    assert r.status_code == 200
    assert r.json()["decision"] == "continue" and r.json()["reason"] == "degraded" and r.json()["degraded"] is True

    def explode(*a, **k):
        raise RuntimeError("guard is broken")

    g.assess = explode
    r = client.post("/v1/assess", json={"turns": PERSISTENT})
    assert r.status_code == 200 and r.json()["decision"] == "continue" and r.json()["degraded"] is True
    metrics = client.get("/metrics").text
    assert 'escalation_guard_errors_total{kind="assess"} 1.0' in metrics
    assert "escalation_guard_degraded_turns_total 10.0" in metrics
    assert 'escalation_guard_decisions_total{decision="continue",reason="degraded"} 2.0' in metrics


def test_health_readiness_and_metrics(service) -> None:
    client, _ = service
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model"] == "model.onnx"
    gates = ready.json()["gates"]  # the fixture run failed its recall gate: shown, and still ready
    assert gates["verdict"] == "failed" and gates["failed"] == ["termination_recall"] and gates["enforced"] is False
    assert gates["summary"].startswith("FAILED, not enforced: termination_recall 0.4595")
    client.post("/v1/assess", json={"turns": PERSISTENT})
    client.post("/v1/assess", content=b"{")
    client.get("/no-such-route")
    m = client.get("/metrics")
    assert m.headers["content-type"].startswith("text/plain")
    text = m.text
    for needle in (
        'escalation_guard_requests_total{method="POST",route="/v1/assess",status="200"}',
        'escalation_guard_requests_total{method="POST",route="/v1/assess",status="400"}',
        'escalation_guard_requests_total{method="GET",route="other",status="404"}',
        'escalation_guard_request_duration_seconds_bucket{le="0.005",route="/v1/assess"}',
        'escalation_guard_decisions_total{decision="end",reason="persistent_harmful"}',
        'escalation_guard_errors_total{kind="http_400"}',
        "escalation_guard_degraded_turns_total",
        "escalation_guard_ready 1.0",
        "escalation_guard_rescored_turns_total",
        "escalation_guard_rescore_failures_total 0.0",
    ):
        assert needle in text, needle


def test_metrics_count_the_turns_the_guard_rescored(service) -> None:
    from serving.rescore import RescoreConfig

    client, _ = service
    guard = client.app.state.guard
    assert guard.rescore is not None  # the exported bundle ships a margin
    saved = guard.rescore
    try:
        guard.rescore = RescoreConfig(saved.model, 1e9)  # every turn near a threshold
        before = guard.stats().get("rescored", 0)
        client.post("/v1/assess", json={"turns": PERSISTENT})
        after = guard.stats()["rescored"]
    finally:
        guard.rescore = saved
    assert after - before == len(PERSISTENT)
    assert f"escalation_guard_rescored_turns_total {float(after)}" in client.get("/metrics").text


def test_feedback_is_appended_durably_and_concurrently(service) -> None:
    client, path = service
    before = path.read_text().count("\n") if path.exists() else 0
    payload = {
        "conversation": {"id": "c-9", "turns": PERSISTENT},
        "decision": "end",
        "reason": "persistent_harmful",
        "comment": "I was only asking about history",
    }
    r = client.post("/v1/feedback", json=payload)
    assert r.status_code == 202
    assert r.json() == {"status": "recorded", "id": "c-9", "feedback_id": r.json()["feedback_id"]}
    statuses: list[int] = []

    def post(k: int) -> None:
        for j in range(10):
            body = {"conversation": {"turns": [{"role": "user", "text": f"thread {k} post {j} ✓"}]}}
            statuses.append(client.post("/v1/feedback", json=body).status_code)

    threads = [threading.Thread(target=post, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [202] * 80
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == before + 81
    records = [json.loads(line) for line in lines[before:]]
    first = records[0]
    assert list(first) == ["feedback_id", "received_at", "conversation", "decision", "reason", "comment"]
    assert len({r["feedback_id"] for r in records}) == 81
    assert first["conversation"] == {"id": "c-9", "turns": PERSISTENT}
    assert first["decision"] == "end" and first["comment"] == "I was only asking about history"
    assert all(r["conversation"]["id"].startswith("feedback-") for r in records[1:])
    assert len({r["conversation"]["turns"][0]["text"] for r in records[1:]}) == 80


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({}, 422, "conversation"),
        ({"conversation": "hi"}, 422, "conversation"),
        ({"conversation": {"turns": []}}, 422, "conversation.turns"),
        ({"conversation": {"turns": [{"role": "user", "text": 1}]}}, 422, "conversation.turns[0].text"),
        ({"conversation": {"turns": [{"role": "user", "text": "a"}]}, "decision": "maybe"}, 422, "decision"),
        ({"conversation": {"turns": [{"role": "user", "text": "a"}]}, "comment": "c" * 6_000}, 413, "comment"),
    ],
)
def test_bad_feedback_is_rejected(service, payload, status: int, field: str) -> None:
    client, _ = service
    r = client.post("/v1/feedback", json=payload)
    assert r.status_code == status and r.json()["error"]["field"] == field


def test_settings_from_the_repo_config() -> None:
    s = Settings.load(REPO_ROOT / "configs" / "serve.yaml")
    assert s.host == "127.0.0.1" and s.threads == 1 and s.max_body_bytes == 1_048_576
    assert s.feedback_path.endswith(".jsonl")
