"""What a batcher counts, in the shape of Triton's statistics extension, for
`/v2/models/{m}/stats` and `/metrics`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Counter:
    """A count and a total duration in nanoseconds (Triton's statistics shape)."""

    count: int = 0
    ns: int = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += int(seconds * 1e9)

    def to_json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class BatcherStats:
    """What `/v2/models/{m}/stats` and `/metrics` report for one model."""

    success: Counter = field(default_factory=Counter)
    fail: Counter = field(default_factory=Counter)
    queue: Counter = field(default_factory=Counter)
    compute: Counter = field(default_factory=Counter)
    batch_sizes: dict[int, Counter] = field(default_factory=dict)
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    rejected: int = 0
    timeouts: int = 0
    cancelled: int = 0
    errors: int = 0


def snapshot(batcher: Any) -> dict[str, Any]:
    """Triton-shaped statistics for this model, plus medserve's own counters."""
    s = batcher.stats
    return {
        "name": batcher.name,
        "version": batcher.adapter.manifest.version,
        "last_inference": s.last_inference_ms,
        "inference_count": s.inference_count,
        "execution_count": s.execution_count,
        "inference_stats": {
            "success": s.success.to_json(),
            "fail": s.fail.to_json(),
            "queue": s.queue.to_json(),
            "compute_infer": s.compute.to_json(),
        },
        "batch_stats": [
            {"batch_size": size, "compute_infer": counter.to_json()}
            for size, counter in sorted(s.batch_sizes.items())
        ],
        "queue_depth": batcher.queue_depth,
        "in_flight": batcher.in_flight,
        "config": {
            "max_batch_size": batcher.config.max_batch_size,
            "max_queue_delay_ms": batcher.config.max_queue_delay_ms,
            "max_queue_size": batcher.config.max_queue_size,
        },
        "rejected": s.rejected,
        "timeouts": s.timeouts,
        "cancelled": s.cancelled,
        "errors": s.errors,
    }
