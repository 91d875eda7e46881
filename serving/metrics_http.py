"""Prometheus metrics of the HTTP service.

Each app gets its own CollectorRegistry so several apps (tests, or two bundles
in one process) never collide on metric names.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Per-request latency buckets (seconds): a turn is a few ms; big conversations take longer.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "escalation_guard_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "escalation_guard_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "escalation_guard_decisions",
            "Conversation decisions by decision and reason",
            ["decision", "reason"],
            registry=r,
        )
        self.turns = Counter("escalation_guard_turns_scored", "Turns scored", registry=r)
        self.degraded_turns = Counter(
            "escalation_guard_degraded_turns", "Turns answered `continue` because scoring failed", registry=r
        )
        self.degraded_responses = Counter(
            "escalation_guard_degraded_responses", "Responses carrying degraded: true", registry=r
        )
        self.errors = Counter("escalation_guard_errors", "Errors by kind", ["kind"], registry=r)
        self.feedback = Counter("escalation_guard_feedback_records", "Feedback records appended", registry=r)
        self.ready = Gauge("escalation_guard_ready", "1 when the scorer is loaded and warmed up", registry=r)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
