"""A bounded loopback abuse run: heavy, slow, malformed and vanishing clients beside normal ones.

    python tools/abuse_run.py --bundle models/bundle --seconds 60 [--json metrics/abuse_run.json]

Starts `python -m serving serve` on a free loopback port (a temporary feedback file), then runs, for
`--seconds`:
- normal clients: live-sized chats (1-12 turns) to /v1/assess, timed: the p50/p99 that matter;
- heavy clients: 200-turn chats of ~1,000-character turns (the largest the limits accept), back to back;
- oversized clients: 600 turns or a 2 MB body (must get 413);
- malformed clients: deep nesting, 5,000-digit integers, bad UTF-8, lone surrogates, wrong types and
  content types (must get a 4xx, never a 5xx);
- slow clients: headers a byte at a time, bodies that never finish (must be dropped, not served forever);
- vanishing clients: a heavy request, then the socket closed at once (the server must stop that work);
- a feedback flooder (rate-limited: 429s, and the feedback file stays small).
The normal clients first run alone for `--baseline-seconds`, so their latency under abuse is read against
their latency on the same machine a minute earlier. Samples the server's RSS every 0.2 s and prints one
JSON summary; exits 1 when a malformed request got a
5xx, a normal request failed, or the server died.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from serving.loadtest import conversation, require_loopback

MAX_SECONDS = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Client(threading.Thread):
    """One client of a kind, looping until the deadline; records statuses (and latencies for `normal`)."""

    def __init__(self, kind: str, port: int, deadline: float, seed: int) -> None:
        super().__init__(daemon=True, name=f"{kind}-{seed}")
        self.kind, self.port, self.deadline = kind, port, deadline
        self.rng = random.Random(seed)
        self.status: Counter[str] = Counter()
        self.latencies: list[float] = []

    def run(self) -> None:
        step = getattr(self, f"_{self.kind}")
        while time.monotonic() < self.deadline:
            try:
                step()
            except (OSError, http.client.HTTPException) as exc:
                self.status[f"exception:{type(exc).__name__}"] += 1
                time.sleep(0.05)

    def _request(self, body: bytes, path: str = "/v1/assess", ctype: str | None = "application/json") -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            headers = {"Content-Type": ctype} if ctype else {}
            conn.request("POST", path, body, headers)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def _normal(self) -> None:
        k = self.rng.randrange(1_000_000)
        body = json.dumps({"id": f"n-{k}", "turns": conversation(k)}).encode()
        t0 = time.perf_counter()
        status = self._request(body)
        self.latencies.append(time.perf_counter() - t0)
        self.status[str(status)] += 1
        time.sleep(self.rng.uniform(0.0, 0.05))

    def _heavy(self) -> None:
        if not hasattr(self, "heavy_body"):  # built once: the harness should not eat the CPU it measures
            words = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do"]
            turns = [
                {"role": ("user", "assistant")[i % 2], "text": " ".join(self.rng.choice(words) for _ in range(170))}
                for i in range(200)
            ]
            self.heavy_body = json.dumps({"turns": turns}).encode()
        self.status[str(self._request(self.heavy_body))] += 1

    def _oversized(self) -> None:
        if self.rng.random() < 0.5:
            body = json.dumps({"turns": [{"role": "user", "text": "hi"}] * 600}).encode()
        else:
            body = json.dumps({"turns": [{"role": "user", "text": "x" * (2 << 20)}]}).encode()
        self.status[str(self._request(body))] += 1

    MALFORMED = (
        lambda r: ("[" * 50_000 + "]" * 50_000).encode(),
        lambda r: ('{"id": ' + "9" * 5_000 + ', "turns": []}').encode(),
        lambda r: b'{"turns": [{"role": "user", "text": "caf\xe9"}]}',
        lambda r: b'{"id": "\\ud800", "turns": [{"role": "user", "text": "end this \\udfff now"}]}',
        lambda r: json.dumps(
            {"turns": [{"role": r.choice([1, None, "robot"]), "text": r.choice([[], 2.5, None])}]}
        ).encode(),
        lambda r: json.dumps({"turns": {"role": "user"}}).encode(),
        lambda r: bytes(r.randrange(256) for _ in range(r.randrange(1, 400))),
        lambda r: b"",
        lambda r: json.dumps([1, 2, 3]).encode(),
        lambda r: json.dumps({"turns": [{"role": "user", "text": "hi", "x": {"y": [{}] * 50}}]}).encode(),
    )

    def _malformed(self) -> None:
        body = self.rng.choice(self.MALFORMED)(self.rng)
        path = self.rng.choice(["/v1/assess", "/v1/feedback"])
        ctype = self.rng.choice(["application/json", "application/json", "text/plain", None])
        status = self._request(body, path, ctype)
        self.status[str(status)] += 1
        if status >= 500 and status not in (503, 507):
            self.status["malformed_5xx"] += 1

    def _slow(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            if self.rng.random() < 0.5:
                head = b"POST /v1/assess HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                for b in head:  # a header byte every 0.5 s: never finishes in time
                    sock.sendall(bytes([b]))
                    time.sleep(0.5)
                    if time.monotonic() > self.deadline:
                        return
            else:
                sock.sendall(
                    b"POST /v1/assess HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"
                )
            sock.settimeout(30)
            try:
                while sock.recv(4096):
                    pass
                self.status["dropped_by_server"] += 1
            except (TimeoutError, ConnectionResetError, BrokenPipeError):
                self.status["not_dropped_in_30s"] += 1

    def _vanishing(self) -> None:
        turns = [{"role": ("user", "assistant")[i % 2], "text": "word " * 200} for i in range(200)]
        body = json.dumps({"turns": turns}).encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(b"POST /v1/assess HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
            sock.sendall(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        self.status["sent_and_left"] += 1
        time.sleep(0.2)

    def _flooder(self) -> None:
        body = json.dumps({"conversation": {"turns": [{"role": "user", "text": "spam " * 500}]}}).encode()
        self.status[str(self._request(body, "/v1/feedback"))] += 1


KINDS = {"normal": 2, "heavy": 2, "oversized": 1, "malformed": 2, "slow": 4, "vanishing": 1, "flooder": 1}


def run_phase(kinds: dict[str, int], port: int, seconds: float, server: subprocess.Popen) -> tuple[list[Client], float]:
    """Clients of `kinds` for `seconds`; returns them and the server's peak RSS meanwhile."""
    deadline = time.monotonic() + seconds
    clients = [
        Client(kind, port, deadline, 1000 * i + j) for i, (kind, n) in enumerate(kinds.items()) for j in range(n)
    ]
    for c in clients:
        c.start()
    peak = rss_mb(server.pid)
    while time.monotonic() < deadline and server.poll() is None:
        peak = max(peak, rss_mb(server.pid))
        time.sleep(0.2)
    for c in clients:
        c.join(timeout=90)
    return clients, peak


def latency(clients: list[Client]) -> dict[str, Any]:
    ms = np.asarray([x for c in clients for x in c.latencies]) * 1000
    if not len(ms):
        return {"requests": 0}
    pct = {q: round(float(np.percentile(ms, p)), 1) for q, p in (("p50", 50), ("p99", 99), ("max", 100))}
    return {"requests": int(len(ms)), **pct}


def run(bundle: str, seconds: float, baseline_seconds: float) -> dict[str, Any]:
    port = free_port()
    require_loopback(f"http://127.0.0.1:{port}")
    with tempfile.TemporaryDirectory(prefix="eg-abuse-") as tmp:
        feedback = Path(tmp) / "feedback.jsonl"
        cmd = [
            sys.executable,
            "-m",
            "serving",
            "serve",
            "--bundle",
            bundle,
            "--port",
            str(port),
            "--feedback-path",
            str(feedback),
        ]
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_ready(port, server)
            ready_rss = rss_mb(server.pid)
            alone, alone_peak = run_phase({"normal": KINDS["normal"]}, port, baseline_seconds, server)
            clients, peak = run_phase(KINDS, port, seconds, server)
            alive = server.poll() is None
            after = rss_mb(server.pid) if alive else float("nan")
            size = feedback.stat().st_size if feedback.exists() else 0
        finally:
            server.terminate()
            try:
                _, err = server.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                _, err = server.communicate()
    by_kind: dict[str, Counter[str]] = {}
    for c in alone + clients:
        by_kind.setdefault(c.kind, Counter()).update(c.status)
    normal = by_kind.get("normal", Counter())
    return {
        "seconds": {"normal_alone": baseline_seconds, "under_abuse": seconds},
        "clients": KINDS,
        "server_alive_at_end": alive,
        "server_rss_mb": {
            "ready": round(ready_rss, 1),
            "peak": round(max(alone_peak, peak, after), 1),
            "at_end": round(after, 1),
        },
        "normal_latency_ms": {
            "alone": latency([c for c in alone if c.kind == "normal"]),
            "under_abuse": latency([c for c in clients if c.kind == "normal"]),
        },
        "normal_failures": int(sum(v for k, v in normal.items() if k != "200")),
        "malformed_5xx": int(by_kind.get("malformed", Counter())["malformed_5xx"]),
        "feedback_file_bytes": size,
        "status_by_client": {k: dict(v) for k, v in by_kind.items()},
        "server_stderr_tracebacks": err.count("Traceback"),
    }


def wait_ready(port: int, server: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.poll() is not None:
            raise RuntimeError(f"server exited: {server.stderr.read()[-2000:] if server.stderr else ''}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server not ready in time")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", default="models/bundle")
    p.add_argument("--seconds", type=float, default=60, help="the abuse phase")
    p.add_argument("--baseline-seconds", type=float, default=15, help="normal clients alone first, for comparison")
    p.add_argument("--json", help="also write the summary here")
    args = p.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS:
        p.error(f"--seconds must be in (0, {MAX_SECONDS}]")
    result = run(args.bundle, args.seconds, args.baseline_seconds)
    text = json.dumps(result, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    print(text)
    ok = result["server_alive_at_end"] and result["malformed_5xx"] == 0 and result["normal_failures"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
