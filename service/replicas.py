"""Replicas of a routed model and the per-request choice between them.

A model may be served by several workers (one per GPU, one per pod). Each request goes to the
replica with fewer requests outstanding of two drawn at random (power of two choices): close to
least-outstanding balancing without a scan, and no herd on one replica when several gateways
see the same counts. A replica that refuses or drops a request is ejected (not ready) until
discovery's next probe finds it answering again. Counters live on the replica as plain ints and
are read by `ReplicaCollector` at scrape time, so the request path pays nothing for metrics.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.errors import MedserveError, ModelNotReady, Unavailable

# Errors after which the request certainly did no work on that replica: it refused or dropped
# the connection before answering, is shutting down, or does not have the model loaded.
# Inference is idempotent (a seed fixes generation), so such a request goes to another replica.
RETRY_ELSEWHERE: tuple[type[MedserveError], ...] = (Unavailable, ModelNotReady)
RETRY_CODES = frozenset({"unavailable", "unreachable", "model_not_ready"})  # same, as answers
MAX_ATTEMPTS = 3


@dataclass(eq=False)
class Replica:
    """One worker serving one model, and what the gateway knows about it."""

    url: str
    discovered: bool = False
    ready: bool = False
    state: str = "UNKNOWN"
    reason: str | None = None
    checked_at: float = 0.0
    timeouts: int = 0  # consecutive health-probe timeouts
    inflight: int = 0  # requests sent, not yet answered
    requests: int = 0  # requests sent to it
    failures: int = 0  # requests it refused or dropped
    ejections: int = 0  # times it was taken out of rotation


def pick(replicas: list[Replica], tried: Iterable[Replica] = ()) -> Replica | None:
    """The replica for the next request: of two ready ones drawn at random, the less busy."""
    if len(replicas) == 1:  # the common case: one worker per model
        only = replicas[0]
        return only if only.ready and only not in tried else None
    ready = [r for r in replicas if r.ready and r not in tried]
    if len(ready) <= 1:
        return ready[0] if ready else None
    count = len(ready)
    if count == 2:
        a, b = ready
    else:  # two distinct ones at random (random.sample is several times slower)
        i = int(random.random() * count)
        j = int(random.random() * (count - 1))
        a, b = ready[i], ready[j + (j >= i)]
    if a.inflight == b.inflight:
        return a if random.random() < 0.5 else b
    return a if a.inflight < b.inflight else b


def any_replica(replicas: list[Replica]) -> Replica | None:
    """A replica for a call that needs no ready model (metadata, stats): a ready one first."""
    return pick(replicas) or (replicas[0] if replicas else None)


def retry_elsewhere(error: MedserveError) -> bool:
    return isinstance(error, RETRY_ELSEWHERE)


class ReplicaCollector(Collector):
    """Per-replica readiness, outstanding requests, answers, failures and ejections."""

    def __init__(self, routes: Callable[[], Iterator[tuple[str, list[Replica]]]]) -> None:
        self._routes = routes

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "replica"]
        ready = GaugeMetricFamily(
            "medserve_replica_ready", "1 when the replica takes requests.", labels=labels
        )
        inflight = GaugeMetricFamily(
            "medserve_replica_inflight",
            "Requests sent to the replica, not answered.",
            labels=labels,
        )
        answered = CounterMetricFamily(
            "medserve_replica_requests", "Requests sent to the replica.", labels=labels
        )
        failed = CounterMetricFamily(
            "medserve_replica_failures",
            "Requests the replica refused or dropped (retried on another).",
            labels=labels,
        )
        ejected = CounterMetricFamily(
            "medserve_replica_ejections",
            "Times the replica was taken out of rotation.",
            labels=labels,
        )
        for model, replicas in self._routes():
            for r in replicas:
                key = [model, r.url]
                ready.add_metric(key, 1.0 if r.ready else 0.0)
                inflight.add_metric(key, r.inflight)
                answered.add_metric(key, r.requests)
                failed.add_metric(key, r.failures)
                ejected.add_metric(key, r.ejections)
        yield from (ready, inflight, answered, failed, ejected)


def describe(replica: Replica, device: str | None) -> dict[str, Any]:
    """A replica as `/v1/models` and `/readyz` show it."""
    return {
        "url": replica.url,
        "device": device,
        "ready": replica.ready,
        "state": replica.state,
        "reason": replica.reason,
        "inflight": replica.inflight,
        "requests": replica.requests,
        "failures": replica.failures,
    }
