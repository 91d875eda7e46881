"""POST /v1/observe: one turn per request, the state carried by the client, signed, any replica, branches."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from serving.guard import Guard
from serving.http import Settings, create_app
from tests.serving_fixtures import PERSISTENT_TURNS as PERSISTENT

KEY = "k" * 32


@pytest.fixture(scope="module")
def replicas(guard, tmp_path_factory, monkeypatch_module):
    """Two apps around the same bundle, as two replicas sharing the state key."""
    monkeypatch_module.setenv("ESCALATION_GUARD_STATE_KEY", KEY)
    fb = tmp_path_factory.mktemp("fb")
    return [TestClient(create_app(guard, Settings(feedback_path=str(fb / f"{i}.jsonl")))) for i in range(2)]


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def walk(clients, turns, state=None, shape="turn"):
    """Send each turn with the previous answer's state, alternating replicas; the answers."""
    answers = []
    for i, t in enumerate(turns):
        body = {"turn": t} if shape == "turn" else {"message": {"role": t["role"], "content": t["text"]}}
        r = clients[i % len(clients)].post("/v1/observe", json={"state": state, **body})
        assert r.status_code == 200, r.text
        answers.append(r.json())
        state = answers[-1]["state"]
    return answers


def test_observe_matches_guard_observe_across_replicas(replicas, guard: Guard) -> None:
    answers = walk(replicas, PERSISTENT)
    state = guard.new_conversation()
    for t, a in zip(PERSISTENT, answers, strict=True):
        want = guard.observe(state, t["role"], t["text"]).to_dict()
        assert {k: a[k] for k in want} == want
        assert a["ended"] == state.ended and a["end_turn"] == state.policy.end_turn and a["notes"] == []
    assert answers[-1]["action"] == "end" and answers[-1]["reason"] == "persistent_harmful"
    assert answers == walk(replicas, PERSISTENT, shape="message")  # the messages shape is the same turn


def test_observe_decisions_equal_assess(replicas, guard: Guard) -> None:
    assess = guard.assess([(t["role"], t["text"]) for t in PERSISTENT])
    answers = walk(replicas[:1], PERSISTENT)
    assert [a["action"] for a in answers] == [t.action for t in assess.turns]
    assert [a["scores"] for a in answers] == [t.scores for t in assess.turns]


def test_a_branch_is_an_earlier_state_sent_again(replicas) -> None:
    answers = walk(replicas, PERSISTENT[:3])
    again = walk(replicas, PERSISTENT[3:], state=answers[1]["state"])  # edit turn 2: continue from turn 1
    assert again[0]["index"] == 2
    straight = walk(replicas, PERSISTENT[:2] + PERSISTENT[3:])
    assert [a["action"] for a in again] == [a["action"] for a in straight[2:]]


def _forge(token: str) -> str:
    payload, _, tag = token.partition(".")
    doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    doc["policy"]["end_turn"] = None
    forged = base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return forged + "." + tag


def test_altered_forged_and_foreign_states_are_refused(replicas, guard: Guard, bundle, tmp_path: Path) -> None:
    ended = walk(replicas, PERSISTENT)[-1]["state"]
    for bad in (_forge(ended), ended[:-2], "garbage", ended.replace(".", "..")):
        r = replicas[0].post("/v1/observe", json={"state": bad, "turn": {"role": "user", "text": "hi"}})
        assert r.status_code == 422 and r.json()["error"]["field"] == "state", r.text
    other = TestClient(create_app(guard, Settings(feedback_path=str(tmp_path / "f.jsonl"), state_key_env="NO_SUCH")))
    r = other.post("/v1/observe", json={"state": ended, "turn": {"role": "user", "text": "hi"}})
    assert r.status_code == 422 and "signature" in r.json()["error"]["message"]
    g2 = Guard.load(bundle)
    g2.manifest = type(g2.manifest)(**{**g2.manifest.__dict__, "digest": "0" * 64})  # another bundle
    foreign = TestClient(create_app(g2, Settings(feedback_path=str(tmp_path / "g.jsonl"))))
    r = foreign.post("/v1/observe", json={"state": ended, "turn": {"role": "user", "text": "hi"}})
    assert r.status_code == 422 and "bundle" in r.json()["error"]["message"], r.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"state": None}, "turn"),
        ({"turn": {"role": "user", "text": "a"}, "message": {"role": "user", "content": "a"}}, "turn"),
        ({"turn": {"role": "robot", "text": "a"}}, "turn.role"),
        ({"state": 5, "turn": {"role": "user", "text": "a"}}, "state"),
    ],
)
def test_malformed_observe_requests_get_a_422(replicas, body, field: str) -> None:
    r = replicas[0].post("/v1/observe", json=body)
    assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text


def test_a_scoring_failure_answers_continue_and_keeps_the_state(bundle, tmp_path: Path) -> None:
    g = Guard.load(bundle)
    client = TestClient(create_app(g, Settings(feedback_path=str(tmp_path / "fb.jsonl"))))
    first = walk([client], PERSISTENT[:1])[0]
    g.model.run = lambda ids, mask, types: np.full((ids.shape[0], 5), np.nan, np.float32)
    r = client.post("/v1/observe", json={"state": first["state"], "turn": PERSISTENT[1]}).json()
    assert r["action"] == "continue" and r["degraded"] is True and r["index"] == 1

    def explode(*a, **k):
        raise RuntimeError("guard is broken")

    g.observe = explode
    r = client.post("/v1/observe", json={"state": first["state"], "turn": PERSISTENT[1]}).json()
    assert r["action"] == "continue" and r["degraded"] and r["state"] == first["state"]
    assert 'escalation_guard_errors_total{kind="observe"} 1.0' in client.get("/metrics").text


def test_short_state_key_is_refused_at_start(guard, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ESCALATION_GUARD_STATE_KEY", "short")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        create_app(guard, Settings(feedback_path=str(tmp_path / "f.jsonl")))
