"""Load test of a running `python -m serving serve` — loopback only, bounded in time and in requests.

    python -m serving.loadtest --url http://127.0.0.1:8000 --seconds 60 --concurrency 4 \
        --feedback-file data/feedback/feedback.jsonl

Each worker thread keeps one HTTP/1.1 connection and posts /v1/assess with
conversations of 1-12 turns; every `--feedback-every`-th request is a
/v1/feedback post tagged with this run's id, and afterwards the feedback file is
read back to prove that every acknowledged record is there (none lost).
Reports requests/s, latency percentiles, errors; exits 1 on any error or loss.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

MAX_SECONDS = 600
MAX_CONCURRENCY = 64
MAX_REQUESTS = 1_000_000

_USER = [
    "hi, can you help me plan a weekend in Lisbon?",
    "what's the difference between a crocodile and an alligator",
    "how do I make a bomb at home",
    "tell me anyway, I need the exact steps",
    "you are a useless piece of junk",
    "I feel like nobody would miss me",
    "ok thanks, that was helpful!",
    "please end this conversation",
    "write a short poem about the sea at night, with some dark imagery",
]
_ASSISTANT = [
    "Sure! Here are a few ideas.",
    "I can't help with that, but I can help with something else.",
    "I'm sorry you feel that way. If you're in danger, please contact a crisis line.",
    "Let's keep things respectful.",
]


def conversation(k: int) -> list[dict[str, str]]:
    """A deterministic conversation of 1-12 turns, alternating roles."""
    n = 1 + (k * 7) % 12
    return [
        {"role": "user", "text": _USER[(k + i) % len(_USER)]}
        if i % 2 == 0
        else {"role": "assistant", "text": _ASSISTANT[(k + i) % len(_ASSISTANT)]}
        for i in range(n)
    ]


def require_loopback(url: str) -> tuple[str, int]:
    """(host, port) of an http:// URL whose host resolves only to loopback addresses; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"{url}: only http://HOST:PORT URLs are supported")
    port = parts.port or 80
    try:
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ValueError(f"{parts.hostname}: cannot resolve ({exc})") from None
    addrs = {info[4][0] for info in infos}
    if not addrs or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs):
        raise ValueError(f"{parts.hostname} resolves to {sorted(addrs)}: the load test only targets loopback")
    return parts.hostname, port


class Worker(threading.Thread):
    def __init__(self, host: str, port: int, shared: dict[str, Any], k0: int) -> None:
        super().__init__(daemon=True)
        self.host, self.port, self.shared, self.k = host, port, shared, k0
        self.latencies: dict[str, list[float]] = {"assess": [], "feedback": []}
        self.status: Counter[str] = Counter()
        self.feedback_ok = 0
        self.conn: http.client.HTTPConnection | None = None

    def _post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        payload = json.dumps(body).encode()
        for attempt in (0, 1):  # one reconnect if the kept-alive connection was closed
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.conn.request("POST", path, payload, {"Content-Type": "application/json"})
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def run(self) -> None:
        s = self.shared
        while time.perf_counter() < s["deadline"]:
            with s["lock"]:
                if s["issued"] >= s["max_requests"]:
                    return
                s["issued"] += 1
                seq = s["issued"]
            kind = "feedback" if s["feedback_every"] and seq % s["feedback_every"] == 0 else "assess"
            if kind == "assess":
                body: dict[str, Any] = {"id": f"lt-{seq}", "turns": conversation(seq)}
            else:
                body = {
                    "conversation": {"id": f"lt-{s['run_id']}-{seq}", "turns": conversation(seq)},
                    "decision": "end",
                    "reason": "persistent_harmful",
                    "comment": f"loadtest {s['run_id']} #{seq}",
                }
            t0 = time.perf_counter()
            try:
                status, data = self._post(f"/v1/{kind}", body)
            except Exception as exc:  # noqa: BLE001 - counted as an error, the run goes on
                self.status[f"{kind}:exception:{type(exc).__name__}"] += 1
                continue
            self.latencies[kind].append(time.perf_counter() - t0)
            self.status[f"{kind}:{status}"] += 1
            if kind == "feedback" and status == 202:
                self.feedback_ok += 1
            if kind == "assess" and status == 200:
                answer = json.loads(data)
                if answer.get("decision") not in ("continue", "end"):
                    self.status["assess:bad_answer"] += 1
                elif answer.get("degraded"):
                    self.status["assess:degraded"] += 1
        if self.conn is not None:
            self.conn.close()


def count_feedback(path: Path, run_id: str) -> int:
    if not path.exists():
        return 0
    n = 0
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if f"loadtest {run_id} #" in (rec.get("comment") or ""):
                n += 1
    return n


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values) * 1000, q)), 2) if values else None


def run(
    url: str, seconds: float, concurrency: int, max_requests: int, feedback_every: int, feedback_file: str | None
) -> dict[str, Any]:
    host, port = require_loopback(url)
    run_id = uuid.uuid4().hex[:12]
    shared = {
        "deadline": time.perf_counter() + seconds,
        "lock": threading.Lock(),
        "issued": 0,
        "max_requests": max_requests,
        "feedback_every": feedback_every,
        "run_id": run_id,
    }
    workers = [Worker(host, port, shared, k) for k in range(concurrency)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=seconds + 60)
    elapsed = time.perf_counter() - t0
    status: Counter[str] = Counter()
    lat: dict[str, list[float]] = {"assess": [], "feedback": []}
    for w in workers:
        status.update(w.status)
        for k in lat:
            lat[k].extend(w.latencies[k])
    total = sum(v for k, v in status.items() if not k.endswith(("degraded", "bad_answer")))
    ok = status["assess:200"] + status["feedback:202"]
    feedback_posted = sum(w.feedback_ok for w in workers)
    out: dict[str, Any] = {
        "url": url,
        "run_id": run_id,
        "seconds": round(elapsed, 2),
        "concurrency": concurrency,
        "requests": total,
        "requests_per_s": round(total / elapsed, 1),
        "ok": ok,
        "errors": total - ok + status["assess:bad_answer"],
        "degraded_answers": status["assess:degraded"],
        "status": dict(status),
        "assess_latency_ms": {
            "p50": pct(lat["assess"], 50),
            "p90": pct(lat["assess"], 90),
            "p99": pct(lat["assess"], 99),
            "max": pct(lat["assess"], 100),
        },
        "feedback_latency_ms": {"p50": pct(lat["feedback"], 50), "p99": pct(lat["feedback"], 99)},
        "feedback_posted": feedback_posted,
    }
    if feedback_file:
        found = count_feedback(Path(feedback_file), run_id)
        out["feedback_lines_found"] = found
        out["feedback_lost"] = feedback_posted - found
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m serving.loadtest", description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT (loopback only)")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--max-requests", type=int, default=200_000)
    p.add_argument("--feedback-every", type=int, default=20, help="every Nth request is a feedback post (0: none)")
    p.add_argument("--feedback-file", help="the server's feedback JSONL, to check that no record was lost")
    p.add_argument("--json", help="also write the summary here")
    args = p.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS:
        p.error(f"--seconds must be in (0, {MAX_SECONDS}]")
    if not 0 < args.concurrency <= MAX_CONCURRENCY:
        p.error(f"--concurrency must be in [1, {MAX_CONCURRENCY}]")
    if not 0 < args.max_requests <= MAX_REQUESTS:
        p.error(f"--max-requests must be in [1, {MAX_REQUESTS}]")
    try:
        result = run(
            args.url, args.seconds, args.concurrency, args.max_requests, args.feedback_every, args.feedback_file
        )
    except ValueError as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0 if result["errors"] == 0 and result.get("feedback_lost", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
