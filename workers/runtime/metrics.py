"""Prometheus metrics of one worker, read from the batchers' counters at scrape time
(nothing is recorded twice and the request path pays nothing for them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class WorkerCollector(Collector):
    """Per-model counters, queue depth, batch-size histogram and readiness."""

    def __init__(self, snapshot: Callable[[], list[dict[str, Any]]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        labels = ["model"]
        requests = CounterMetricFamily(
            "medserve_worker_requests",
            "Inference requests by outcome.",
            labels=[*labels, "outcome"],
        )
        items = CounterMetricFamily(
            "medserve_worker_inferences", "Items run through predict.", labels=labels
        )
        executions = CounterMetricFamily(
            "medserve_worker_executions", "Calls to predict (batches).", labels=labels
        )
        queue_s = CounterMetricFamily(
            "medserve_worker_queue_seconds", "Total time items waited in the queue.", labels=labels
        )
        compute_s = CounterMetricFamily(
            "medserve_worker_compute_seconds", "Total time spent in predict.", labels=labels
        )
        depth = GaugeMetricFamily(
            "medserve_worker_queue_depth", "Items waiting in the queue.", labels=labels
        )
        ready = GaugeMetricFamily(
            "medserve_worker_model_ready", "1 when the model is loaded.", labels=labels
        )
        sizes = HistogramMetricFamily(
            "medserve_worker_batch_size", "Items per predict call.", labels=labels
        )
        for model in self._snapshot():
            name = model["name"]
            stats = model.get("stats")
            ready.add_metric([name], 1.0 if model["state"] == "READY" else 0.0)
            if stats is None:
                continue
            inference = stats["inference_stats"]
            for outcome in ("success", "fail"):
                requests.add_metric([name, outcome], inference[outcome]["count"])
            for outcome in ("rejected", "timeouts", "cancelled"):
                requests.add_metric([name, outcome], stats[outcome])
            items.add_metric([name], stats["inference_count"])
            executions.add_metric([name], stats["execution_count"])
            queue_s.add_metric([name], inference["queue"]["ns"] / 1e9)
            compute_s.add_metric([name], inference["compute_infer"]["ns"] / 1e9)
            depth.add_metric([name], stats["queue_depth"])
            counts = {b["batch_size"]: b["compute_infer"]["count"] for b in stats["batch_stats"]}
            buckets, total, weighted = [], 0, 0
            for bound in _BATCH_BUCKETS:
                buckets.append((str(bound), sum(c for s, c in counts.items() if s <= bound)))
            total = sum(counts.values())
            weighted = sum(s * c for s, c in counts.items())
            buckets.append(("+Inf", total))
            sizes.add_metric([name], buckets, weighted)
        yield from (requests, items, executions, queue_s, compute_s, depth, ready, sizes)


def make_registry(snapshot: Callable[[], list[dict[str, Any]]]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(WorkerCollector(snapshot))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
