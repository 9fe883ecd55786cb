"""Prometheus metrics of one gateway app (its own registry, so several apps can share a process)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
)  # fmt: skip


class GatewayMetrics:
    """Requests by route and status, latencies, upstream latency, per-model readiness."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "medserve_http_requests_total",
            "HTTP requests answered by the gateway.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "medserve_http_request_duration_seconds",
            "Time from request start to response end, by route.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "medserve_upstream_duration_seconds",
            "Time spent waiting on a model worker, by model.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "medserve_upstream_errors_total",
            "Calls to model workers that failed, by model and error code.",
            ["model", "code"],
            registry=self.registry,
        )
        self.upstream_retries = Counter(
            "medserve_upstream_retries_total",
            "Requests handed to another replica after the first refused or dropped them.",
            ["model"],
            registry=self.registry,
        )
        self.model_ready = Gauge(
            "medserve_model_ready",
            "1 when a worker of the model reports it ready, else 0 (per replica: replica_ready).",
            ["model"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "medserve_rate_limited_total",
            "Requests refused by the per-key rate limit.",
            ["tenant"],
            registry=self.registry,
        )
        self.shed = Counter(
            "medserve_shed_total",
            "Requests refused at the door because MEDSERVE_MAX_INFLIGHT were in flight.",
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
