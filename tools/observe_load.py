"""Load test of POST /v1/observe with real next turns: `python -m tools.observe_load --bundle models/bundle`.

Starts `python -m serving serve` on a free loopback port, then `--concurrency` clients each walk test
conversations (data/splits/test.parquet) turn by turn, sending each turn with the state the previous answer
returned, as a chat backend would. Prints turns/s, latency percentiles, errors and degraded answers; afterwards
replays every walked conversation through `Guard.observe` in this process and counts the turns whose decision
(action, reason, evidence) differs. Exits 1 on any error, degraded answer or difference.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from serving.loadtest import require_loopback
from tools.abuse_run import free_port, wait_ready

MAX_SECONDS = 600


class Walker(threading.Thread):
    """One client: takes the next conversation, walks it turn by turn with the state carried, until the deadline."""

    def __init__(self, port: int, convs: list[list[dict[str, str]]], order: Any, deadline: float, out: dict) -> None:
        super().__init__(daemon=True)
        self.port, self.convs, self.order, self.deadline, self.out = port, convs, order, deadline, out
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.degraded = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while time.monotonic() < self.deadline:
            k = next(self.order)
            answers = self._walk(conn, self.convs[k % len(self.convs)])
            if answers is not None and k < len(self.convs):
                self.out[k] = answers
        conn.close()

    def _walk(self, conn: http.client.HTTPConnection, turns: list[dict[str, str]]) -> list[tuple] | None:
        state, answers = None, []
        for turn in turns:
            if time.monotonic() >= self.deadline:
                return None
            body = json.dumps({"state": state, "turn": turn}).encode()
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/v1/observe", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                raw = resp.read()
            except OSError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                return None
            self.latencies.append(time.perf_counter() - t0)
            if resp.status != 200:
                self.errors.append(f"{resp.status}: {raw[:200]!r}")
                return None
            a = json.loads(raw)
            self.degraded += bool(a["degraded"])
            state = a["state"]
            answers.append((a["action"], a["reason"], tuple(a["evidence"])))
        return answers


def load_conversations(splits: str, limit: int | None) -> list[list[dict[str, str]]]:
    from pipeline.data.split_files import read_split, split_path

    convs = read_split(split_path(splits, "test"))[:limit]
    return [[{"role": t.role, "text": t.text} for t in c.turns] for c in convs]


def in_process(bundle: str, convs: list[list[dict[str, str]]], walked: dict[int, list[tuple]]) -> int:
    """Turns whose decision differs from `Guard.observe` run here, with the server's settings (int8, re-scoring)."""
    from serving.guard import Guard

    guard = Guard.load(bundle)
    differ = 0
    for k, answers in walked.items():
        state = guard.new_conversation()
        for t, got in zip(convs[k], answers, strict=True):
            r = guard.observe(state, t["role"], t["text"])
            differ += (r.action, r.reason, tuple(r.evidence)) != got
    return differ


def run(bundle: str, splits: str, seconds: float, concurrency: int, limit: int | None) -> dict[str, Any]:
    convs = load_conversations(splits, limit)
    port = free_port()
    require_loopback(f"http://127.0.0.1:{port}")
    env = {**os.environ, "ESCALATION_GUARD_STATE_KEY": secrets.token_hex(32)}
    with tempfile.TemporaryDirectory(prefix="eg-observe-") as tmp:
        cmd = [sys.executable, "-m", "serving", "serve", "--bundle", bundle, "--port", str(port)]
        cmd += ["--feedback-path", str(Path(tmp) / "feedback.jsonl")]
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        try:
            wait_ready(port, server)
            walked: dict[int, list[tuple]] = {}
            order, t0 = itertools.count(), time.monotonic()
            walkers = [Walker(port, convs, order, t0 + seconds, walked) for _ in range(concurrency)]
            for w in walkers:
                w.start()
            for w in walkers:
                w.join()
            elapsed = time.monotonic() - t0
        finally:
            server.terminate()
            server.communicate(timeout=30)
    lat = np.array([x for w in walkers for x in w.latencies]) * 1000
    errors = [e for w in walkers for e in w.errors]
    return {
        "seconds": round(elapsed, 1),
        "concurrency": concurrency,
        "turns": int(lat.size),
        "turns_per_s": round(lat.size / elapsed, 1),
        "latency_ms": {q: round(float(np.percentile(lat, p)), 2) for q, p in (("p50", 50), ("p99", 99))},
        "errors": len(errors),
        "first_errors": errors[:3],
        "degraded": sum(w.degraded for w in walkers),
        "conversations_walked": len(walked),
        "decisions_differing_from_guard_observe": in_process(bundle, convs, walked),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--bundle", default="models/bundle", help="the bundle the server loads")
    ap.add_argument("--splits", default="data/splits", help="folder with test.parquet (conversations walked)")
    ap.add_argument("--seconds", type=float, default=60.0, help=f"load duration (at most {MAX_SECONDS})")
    ap.add_argument("--concurrency", type=int, default=4, help="client threads, one conversation at a time each")
    ap.add_argument("--limit", type=int, default=None, help="walk only the first N test conversations (cycled)")
    args = ap.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS or not 0 < args.concurrency <= 64:
        ap.error(f"--seconds must be in (0, {MAX_SECONDS}] and --concurrency in [1, 64]")
    report = run(args.bundle, args.splits, args.seconds, args.concurrency, args.limit)
    print(json.dumps(report, indent=1))
    bad = report["errors"] or report["degraded"] or report["decisions_differing_from_guard_observe"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
