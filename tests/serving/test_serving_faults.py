"""Fault injection: whatever breaks inside the scorer, every turn answers `continue` and the service stays up.

The model raising, returning NaN, ±inf, absurd or wrongly shaped logits; the tokenizer raising; the feedback
disk full, refusing writes, or left with a torn line by a crash. Each case goes through the Python API and
the HTTP service; none may answer `end`, and no acknowledged feedback may be lost or torn.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from serving.guard import Guard
from serving.http import Settings, create_app
from serving.labels import MODEL_LABELS
from serving.policy import CONTINUE, END, R_DEGRADED
from tests.serving_fixtures import PERSISTENT

N = len(MODEL_LABELS)


def _raise(*_a, **_k):
    raise RuntimeError("injected model failure")


MODEL_FAULTS = {
    "raises": _raise,
    "nan": lambda ids, m, t: np.full((ids.shape[0], N), np.nan, np.float32),
    "+inf": lambda ids, m, t: np.full((ids.shape[0], N), np.inf, np.float32),
    "-inf then +inf": lambda ids, m, t: np.tile(
        np.array([np.inf, np.inf, -np.inf, -np.inf, np.inf], np.float32), (ids.shape[0], 1)
    ),
    "absurd finite": lambda ids, m, t: np.full((ids.shape[0], N), 1e30, np.float32),
    "too few labels": lambda ids, m, t: np.zeros((ids.shape[0], N - 1), np.float32),
    "too many rows": lambda ids, m, t: np.zeros((ids.shape[0] + 1, N), np.float32),
    "one dimension": lambda ids, m, t: np.zeros(ids.shape[0] * N, np.float32),
    "not an array": lambda ids, m, t: None,
}


@pytest.fixture
def broken(bundle) -> Guard:
    g = Guard.load(bundle, rescore=False)
    assert g.assess(PERSISTENT).decision == END  # healthy, this chat ends
    return g


@pytest.mark.parametrize("fault", sorted(MODEL_FAULTS))
def test_a_broken_model_never_ends_a_chat(broken: Guard, fault: str, tmp_path: Path) -> None:
    broken.model.run = MODEL_FAULTS[fault]
    d = broken.assess(PERSISTENT)
    assert d.decision == CONTINUE and d.degraded and all(t.reason == R_DEGRADED for t in d.turns)
    state = broken.new_conversation()
    assert all(broken.observe(state, r, t).action == CONTINUE for r, t in PERSISTENT)
    client = TestClient(create_app(broken, Settings(feedback_path=str(tmp_path / "fb.jsonl"))))
    for _ in range(2):  # the service stays up and keeps answering
        r = client.post("/v1/assess", json={"turns": [{"role": r, "text": t} for r, t in PERSISTENT]})
        assert r.status_code == 200 and r.json()["decision"] == CONTINUE and r.json()["degraded"] is True
    assert client.get("/healthz").status_code == 200


def test_a_broken_rescoring_model_keeps_the_primary_scores(bundle) -> None:
    g = Guard.load(bundle)
    g.rescore = type(g.rescore)(g.rescore.model, 1e9)
    expected = Guard.load(bundle, rescore=False).assess(PERSISTENT)
    g._rescorer().run = MODEL_FAULTS["+inf"]
    d = g.assess(PERSISTENT)
    assert [t.scores for t in d.turns] == [t.scores for t in expected.turns] and not d.degraded
    assert g.stats()["rescore_failed"] == len(PERSISTENT)


def test_a_broken_tokenizer_never_ends_a_chat(broken: Guard, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(broken.encoder, "tokenize_turn", _raise)
    monkeypatch.setattr(broken.encoder, "tokenize_turns", _raise)
    d = broken.assess(PERSISTENT)
    assert d.decision == CONTINUE and all(t.degraded for t in d.turns)
    live = broken.observe(broken.new_conversation(), *PERSISTENT[0])
    assert live.error == d.turns[0].error  # one message, whichever path scored it
    client = TestClient(create_app(broken, Settings(feedback_path=str(tmp_path / "fb.jsonl"))))
    r = client.post("/v1/assess", json={"turns": [{"role": "user", "text": "please end this chat"}]})
    assert r.status_code == 200 and r.json()["decision"] == CONTINUE and r.json()["degraded"] is True


# --------------------------------------------------------------------------- feedback disk faults
FEEDBACK = {"conversation": {"turns": [{"role": "user", "text": "you ended my chat for no reason"}]}}


@pytest.fixture
def feedback_client(guard, tmp_path: Path) -> tuple[TestClient, Path]:
    path = tmp_path / "fb" / "feedback.jsonl"
    return TestClient(create_app(guard, Settings(feedback_path=str(path)))), path


def _lines(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), "the file ends inside a record"
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def test_a_full_disk_leaves_no_torn_line(feedback_client, monkeypatch) -> None:
    client, path = feedback_client
    assert client.post("/v1/feedback", json={**FEEDBACK, "feedback_id": "a"}).status_code == 202
    import serving.feedback_store as store

    real_write = store.os.write

    def half_then_full(fd, data):  # the disk fills in the middle of a record
        if len(data) > 10:
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(store.os, "write", half_then_full)
    r = client.post("/v1/feedback", json={**FEEDBACK, "feedback_id": "b"})
    assert r.status_code == 503 and "retry with the same feedback_id" in r.json()["error"]["message"]
    monkeypatch.setattr(store.os, "write", real_write)
    assert [rec["feedback_id"] for rec in _lines(path)] == ["a"]  # the half record was cut off
    assert client.post("/v1/feedback", json={**FEEDBACK, "feedback_id": "b"}).status_code == 202  # the retry
    assert [rec["feedback_id"] for rec in _lines(path)] == ["a", "b"]
    assert client.post("/v1/assess", json={"turns": [{"role": "user", "text": "hi"}]}).status_code == 200


def test_a_read_only_disk_answers_503_and_the_service_stays_up(feedback_client, monkeypatch) -> None:
    client, path = feedback_client
    import serving.feedback_store as store

    def read_only(*_a, **_k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(store.os, "open", read_only)
    assert client.post("/v1/feedback", json=FEEDBACK).status_code == 503
    assert client.post("/v1/assess", json={"turns": [{"role": "user", "text": "hi"}]}).status_code == 200
    assert 'escalation_guard_errors_total{kind="feedback_write"} 1.0' in client.get("/metrics").text
    assert not path.exists()


def test_a_torn_tail_from_a_crash_is_set_aside_not_glued_to(feedback_client) -> None:
    client, path = feedback_client
    path.parent.mkdir(parents=True)
    good = json.dumps({"feedback_id": "before-crash", "conversation": {"id": "c", "turns": []}})
    path.write_bytes(good.encode() + b"\n" + b'{"feedback_id": "torn", "conversat')  # killed mid-write
    assert client.post("/v1/feedback", json={**FEEDBACK, "feedback_id": "after"}).status_code == 202
    assert [rec["feedback_id"] for rec in _lines(path)] == ["before-crash", "after"]
    assert Path(str(path) + ".torn").read_bytes() == b'{"feedback_id": "torn", "conversat\n'


def test_the_cap_and_a_duplicate_id_leave_the_file_as_it_was(guard, tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    client = TestClient(create_app(guard, Settings(feedback_path=str(path), max_feedback_bytes=600)))
    first = client.post("/v1/feedback", json={**FEEDBACK, "feedback_id": "once"})
    again = client.post("/v1/feedback", json={**FEEDBACK, "feedback_id": "once"})  # a retry after a lost answer
    assert first.status_code == 202 and again.status_code == 200 and again.json()["status"] == "duplicate"
    assert len(_lines(path)) == 1
    big = {"conversation": {"turns": [{"role": "user", "text": "x" * 700}]}}
    assert client.post("/v1/feedback", json=big).status_code == 507
    assert len(_lines(path)) == 1
