"""Garbage-collector settings for long-running servers."""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Collect once, then move every object alive now (modules, the app, loaded models) out of
    the collector's reach: a full collection over a worker's ~400k start-up objects pauses
    the process for about half a second, which would land on some request's latency."""
    gc.collect()
    gc.freeze()
