"""The load-test script: loopback only, bounded, and it proves no feedback record is lost (short real run)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn

from serving import loadtest
from serving.guard import Guard
from serving.http import Settings, create_app
from tests.serving_fixtures import exported_bundle


@pytest.mark.parametrize(
    "url", ["http://10.1.2.3:8000", "https://127.0.0.1:8000", "http://8.8.8.8", "ftp://localhost/"]
)
def test_refuses_anything_but_loopback_http(url: str) -> None:
    with pytest.raises(ValueError):
        loadtest.require_loopback(url)
    assert loadtest.require_loopback("http://127.0.0.1:9") == ("127.0.0.1", 9)


def test_bounds_are_enforced() -> None:
    for args in (["--seconds", "601"], ["--concurrency", "65"], ["--max-requests", "0"]):
        with pytest.raises(SystemExit):
            loadtest.main(["--url", "http://127.0.0.1:1", *args])
    assert loadtest.main(["--url", "http://10.0.0.1:1", "--seconds", "1"]) == 2


def test_short_run_against_a_live_server(tmp_path_factory, base_tokenizer_path) -> None:
    bundle = exported_bundle(str(tmp_path_factory.getbasetemp() / "tiny-export"), str(base_tokenizer_path))
    feedback = tmp_path_factory.mktemp("lt") / "feedback.jsonl"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # one client address posts every 5th request as feedback: far above the per-client feedback rate limit
    app = create_app(
        Guard.load(bundle), Settings(feedback_path=str(feedback), feedback_rate_per_s=1e6, feedback_burst=1e6)
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        result = loadtest.run(f"http://127.0.0.1:{port}", 1.5, 2, 400, 5, str(feedback))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert result["requests"] > 10 and result["errors"] == 0
    assert result["feedback_posted"] > 0 and result["feedback_lost"] == 0
    assert result["requests"] <= 400 and result["assess_latency_ms"]["p99"] is not None
