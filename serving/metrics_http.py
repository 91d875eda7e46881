"""Prometheus metrics of the HTTP service.

Each app gets its own CollectorRegistry so several apps (tests, or two bundles
in one process) never collide on metric names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily

#: Per-request latency buckets (seconds): a turn is a few ms; big conversations take longer.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GuardStatsCollector:
    """Counters kept by the Guard itself (serving/guard.py `stats()`), read at scrape time."""

    def __init__(self, stats: Callable[[], Mapping[str, int]]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        s = self.stats()
        yield CounterMetricFamily(
            "escalation_guard_rescored_turns",
            "Turns near a threshold scored again by the bundle's fp32 model (serving/rescore.py)",
            value=s.get("rescored", 0),
        )
        yield CounterMetricFamily(
            "escalation_guard_rescore_failures",
            "Turns whose re-scoring failed (the primary model's scores were kept)",
            value=s.get("rescore_failed", 0),
        )


class ServingMetrics:
    def __init__(self, guard_stats: Callable[[], Mapping[str, int]] | None = None) -> None:
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
        if guard_stats is not None:
            r.register(GuardStatsCollector(guard_stats))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
