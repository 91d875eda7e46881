"""The HTTP service under hostile clients: garbage gets a 4xx, never a 500; work is bounded and stops when
its client leaves; slow clients are dropped; feedback cannot be posted cross-origin or flooded."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.guard import Guard
from serving.http import Settings, create_app, guarded_h11
from serving.limits import Busy, FairSlots, TokenBuckets

HYP = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
hostile_text = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=60)
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client(guard, tmp_path_factory) -> TestClient:
    path = tmp_path_factory.mktemp("fb") / "feedback.jsonl"
    return TestClient(create_app(guard, Settings(feedback_path=str(path), feedback_rate_per_s=1e6, feedback_burst=1e6)))


def _post(client: TestClient, path: str, body: str) -> httpx.Response:
    return client.post(path, content=body.encode("utf-8", "surrogatepass"), headers=JSON)


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ("[" * 100_000 + "]" * 100_000, 400, "nested too deeply"),
        ("[" * 5_000 + "]" * 5_000, 400, "nested too deeply"),
        ('{"id": ' + "9" * 5_000 + ', "turns": []}', 400, "malformed JSON"),
        ('{"id": ' + "9" * 300 + ', "turns": []}', 422, "at most 200 digits"),
        ('{"turns": [{"role": "user", "text": "hi"}], "meta": ' + "[" * 3_000 + "]" * 3_000 + "}", 400, "nested"),
    ],
)
def test_garbage_gets_a_4xx(client: TestClient, body: str, status: int, fragment: str) -> None:
    r = _post(client, "/v1/assess", body)
    assert r.status_code == status and fragment in r.json()["error"]["message"]


def test_lone_surrogates_in_id_and_text_are_answered(client: TestClient) -> None:
    body = (
        '{"id": "c-\\ud800", "turns": [{"role": "user", "text": "please end this conversation now, goodbye \\ud800"}]}'
    )
    r = _post(client, "/v1/assess", body)
    assert r.status_code == 200 and r.json()["id"] == "c-\ud800" and r.json()["degraded"] is False
    r = _post(
        client,
        "/v1/feedback",
        '{"conversation": {"id": "\\udfff", "turns": [{"role": "user", "text": "\\ud800 hi"}]}, "comment": "\\ud800"}',
    )
    assert r.status_code == 202 and r.json()["id"] == "\udfff"


@HYP
@given(
    body=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | hostile_text,
        lambda c: st.lists(c, max_size=4) | st.dictionaries(hostile_text, c, max_size=4),
        max_leaves=12,
    ).map(lambda v: {"turns": v} if not isinstance(v, dict) else v)
    | st.fixed_dictionaries(
        {
            "id": hostile_text,
            "turns": st.lists(
                st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "text": hostile_text}),
                max_size=4,
            ),
        }
    )
)
def test_no_body_gets_a_5xx(client: TestClient, body) -> None:
    text = json.dumps(body)  # escapes lone surrogates, as JSON.stringify does
    for path in ("/v1/assess", "/v1/feedback"):
        r = client.post(path, content=text.encode(), headers=JSON)
        assert r.status_code < 500, (path, r.status_code, r.text[:300])
        if r.status_code == 200 and path == "/v1/assess":
            assert r.json()["decision"] in ("continue", "end") and not r.json()["degraded"]


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_feedback_must_be_declared_json(client: TestClient, ctype) -> None:
    """Simple requests (no CORS preflight) cannot carry application/json, so a web page cannot post feedback."""
    headers = {} if ctype is None else {"content-type": ctype}
    body = json.dumps({"conversation": {"turns": [{"role": "user", "text": "hi"}]}}).encode()
    r = client.post("/v1/feedback", content=body, headers=headers)
    assert r.status_code == 415 and "application/json" in r.json()["error"]["message"]
    if ctype is not None:
        assert client.post("/v1/assess", content=b'{"turns": []}', headers=headers).status_code == 415


def test_feedback_is_rate_limited_per_client(guard, tmp_path: Path) -> None:
    c = TestClient(
        create_app(
            guard, Settings(feedback_path=str(tmp_path / "fb.jsonl"), feedback_rate_per_s=0.01, feedback_burst=3)
        )
    )
    codes = [
        c.post("/v1/feedback", json={"conversation": {"turns": [{"role": "user", "text": f"{i}"}]}}).status_code
        for i in range(5)
    ]
    assert codes == [202, 202, 202, 429, 429]
    assert len((tmp_path / "fb.jsonl").read_text().splitlines()) == 3


def test_feedback_ids_are_validated(client: TestClient) -> None:
    r = client.post(
        "/v1/feedback", json={"conversation": {"turns": [{"role": "user", "text": "a"}]}, "feedback_id": "../x y"}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "feedback_id"


# --------------------------------------------------------------------------- bounded work
class SlowModel:
    """Wraps a model's run: counts calls, and each call waits for `gate` (or `delay` seconds)."""

    def __init__(self, run, delay: float = 0.0) -> None:
        self.run_real, self.delay, self.calls = run, delay, 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, ids, mask, types):
        self.calls += 1
        self.gate.wait(30)
        time.sleep(self.delay)
        return self.run_real(ids, mask, types)


def _long_chat(n: int) -> list[dict]:
    return [{"role": ("user", "assistant")[i % 2], "text": f"turn {i} hello"} for i in range(n)]


@pytest.fixture
def slow_guard(bundle) -> tuple[Guard, SlowModel]:
    g = Guard.load(bundle, rescore=False, batch_size=1)  # a chunk is 4 windows: many chances to stop
    slow = SlowModel(g.model.run, delay=0.02)
    g.model.run = slow
    return g, slow


def _asgi_post(app, body: bytes, *, disconnect_after: float | None = None, split: bool = False) -> list[dict]:
    """Drive the ASGI app directly: the body (in two parts if `split`), then a disconnect."""
    sent: list[dict] = []

    async def go() -> None:
        gone = asyncio.Event()
        parts = [body[: len(body) // 2], body[len(body) // 2 :]] if split else [body]
        queue = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
        if split:
            queue = queue[:1]  # the client leaves after half its body
            gone.set()

        async def receive() -> dict:
            if queue:
                return queue.pop(0)
            if gone.is_set():
                return {"type": "http.disconnect"}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        if disconnect_after is not None:
            asyncio.get_running_loop().call_later(disconnect_after, gone.set)
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/v1/assess", "raw_path": b"/v1/assess", "query_string": b"", "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 8000),
        }  # fmt: skip
        await app(scope, receive, send)

    asyncio.run(go())
    return sent


def test_scoring_stops_when_the_client_leaves(slow_guard, tmp_path: Path) -> None:
    g, slow = slow_guard
    app = create_app(g, Settings(feedback_path=str(tmp_path / "fb.jsonl"), max_turns=1000))
    slow.calls = 0
    _asgi_post(app, json.dumps({"turns": _long_chat(400)}).encode(), disconnect_after=0.3)
    assert 0 < slow.calls < 400  # stopped at a chunk boundary, long before the 400 windows
    metrics = TestClient(app).get("/metrics").text
    assert 'escalation_guard_errors_total{kind="cancelled"} 1.0' in metrics


def test_a_client_leaving_mid_body_is_not_a_server_error(guard, tmp_path: Path) -> None:
    app = create_app(guard, Settings(feedback_path=str(tmp_path / "fb.jsonl")))
    sent = _asgi_post(app, json.dumps({"turns": _long_chat(10)}).encode(), split=True)
    assert sent[0]["status"] == 499
    metrics = TestClient(app).get("/metrics").text
    assert 'kind="client_disconnected"} 1.0' in metrics and 'kind="unhandled"' not in metrics
    assert 'status="500"' not in metrics


def test_scoring_stops_at_the_deadline(slow_guard, tmp_path: Path) -> None:
    g, slow = slow_guard
    c = TestClient(
        create_app(g, Settings(feedback_path=str(tmp_path / "fb.jsonl"), max_turns=1000, request_timeout_s=0.3))
    )
    slow.calls = 0
    r = c.post("/v1/assess", json={"turns": _long_chat(400)})
    assert r.status_code == 503 and "scoring stopped" in r.json()["error"]["message"] and r.headers["retry-after"]
    assert slow.calls < 400


def test_a_full_queue_answers_503_at_once(slow_guard, tmp_path: Path) -> None:
    g, slow = slow_guard
    app = create_app(g, Settings(feedback_path=str(tmp_path / "fb.jsonl"), max_concurrent=1, max_queued=0))
    slow.calls = 0  # (the warm-up turn called it)
    slow.gate.clear()  # the first request holds the only slot

    async def go() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as ac:
            first = asyncio.create_task(ac.post("/v1/assess", json={"turns": _long_chat(2)}))
            while slow.calls == 0:
                await asyncio.sleep(0.01)
            second = await ac.post("/v1/assess", json={"turns": _long_chat(2)})
            slow.gate.set()
            return (await first).status_code, second.status_code

    assert asyncio.run(go()) == (200, 503)


def test_a_waiting_request_gets_the_slot_between_chunks_of_a_long_one() -> None:
    """FairSlots: the holder hands its slot to the oldest waiter at a chunk boundary and queues behind it."""
    slots, order = FairSlots(1), []
    slots.acquire(1)
    waiter_in = threading.Event()

    def small() -> None:
        waiter_in.set()
        slots.acquire(10)
        order.append("small ran")
        slots.release()

    t = threading.Thread(target=small)
    t.start()
    waiter_in.wait()
    while slots.waiting == 0:
        time.sleep(0.001)
    slots.yield_turn(10)  # the long request's chunk boundary
    order.append("long resumed")
    slots.release()
    t.join()
    assert order == ["small ran", "long resumed"]
    slots.acquire(1)
    with pytest.raises(Busy):
        slots.acquire(0.01)


def test_token_buckets_refill_and_forget_old_clients() -> None:
    b = TokenBuckets(rate=1.0, burst=2, max_keys=2)
    assert [b.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert b.take("a", now=1.0) == 0.0
    b.take("b", now=1.0)
    b.take("c", now=1.0)
    assert "a" not in b._buckets


# --------------------------------------------------------------------------- slow clients on a real server
@pytest.fixture
def live_server(guard, tmp_path: Path):
    import uvicorn

    s = Settings(feedback_path=str(tmp_path / "fb.jsonl"), body_timeout_s=0.5, header_timeout_s=0.5)
    config = uvicorn.Config(create_app(guard, s), host="127.0.0.1", port=0, log_level="warning", http=guarded_h11(0.5))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield port
    server.should_exit = True
    thread.join(10)


def _closed_by_server(sock: socket.socket) -> bytes:
    """Read until the server closes the connection (the socket's own timeout bounds the wait)."""
    sock.settimeout(20)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_a_client_that_never_finishes_its_headers_is_dropped(live_server: int) -> None:
    with socket.create_connection(("127.0.0.1", live_server)) as sock:
        sock.sendall(b"POST /v1/assess HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        assert _closed_by_server(sock) == b""


def test_a_client_that_never_finishes_its_body_gets_408(live_server: int) -> None:
    with socket.create_connection(("127.0.0.1", live_server)) as sock:
        sock.sendall(
            b"POST /v1/assess HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        reply = _closed_by_server(sock)
    assert reply.startswith(b"HTTP/1.1 408")


def test_an_idle_connection_after_a_request_is_dropped(live_server: int) -> None:
    with socket.create_connection(("127.0.0.1", live_server)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + b"GET /healthz HTTP/1.1\r\n")  # then stalls
        reply = _closed_by_server(sock)
    assert reply.count(b"HTTP/1.1 200") == 1
