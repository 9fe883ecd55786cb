"""Two real worker processes hosting echo behind one real gateway: requests spread evenly, a
worker SIGKILLed under load costs no request (each is retried on the other replica), and the
counts rebalance when it comes back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.harness import EmbeddedStack, wait_until

CONCURRENCY = 16
BODY = {
    "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]}],
    "parameters": {"delay_ms": 10},
}
SETTINGS = {"num_workers": 2, "replicas": 2, "health_interval_s": 0.25}


@pytest.fixture(scope="module")
def stack(embedded_stack) -> EmbeddedStack:
    return embedded_stack(["echo"], **SETTINGS)


def served(stack: EmbeddedStack) -> list[int]:
    """Requests each worker answered, from its own statistics (not the gateway's view)."""
    counts = []
    for url in stack.worker_urls:
        stats = httpx.get(url + "/v2/models/echo/stats", timeout=5).json()["model_stats"][0]
        counts.append(stats["inference_stats"]["success"]["count"])
    return counts


def load(url: str, seconds: float, during: Callable[[], None] | None = None) -> list[int]:
    """CONCURRENCY closed-loop clients for `seconds`; the status of every request. `during`
    runs once a third of the way in."""
    statuses: list[int] = []
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while time.monotonic() < stop:
                try:
                    status = http.post("/v2/models/echo/infer", json=BODY).status_code
                except httpx.HTTPError:
                    status = 0
                with lock:
                    statuses.append(status)

    threads = [threading.Thread(target=client) for _ in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    if during is not None:
        time.sleep(seconds / 3)
        during()
    for thread in threads:
        thread.join()
    return statuses


def even(counts: list[int]) -> bool:
    mean = sum(counts) / len(counts)
    return all(abs(c - mean) <= 0.2 * mean for c in counts)


def both_ready(stack: EmbeddedStack) -> bool:
    replicas = stack.client.get("/readyz").json()["models"]["echo"]["replicas"]
    return len(replicas) == 2 and all(r["ready"] for r in replicas)


def test_the_gateway_lists_both_replicas(stack) -> None:
    wait_until(lambda: both_ready(stack), 30, "both replicas ready")
    model = stack.client.get("/v1/models/echo").json()
    assert sorted(r["url"] for r in model["replicas"]) == sorted(stack.worker_urls)
    assert all(r["state"] == "READY" for r in model["replicas"])


def test_requests_spread_within_20_percent_of_even_at_concurrency_16(stack) -> None:
    wait_until(lambda: both_ready(stack), 30, "both replicas ready")
    before = served(stack)
    statuses = load(stack.url, 3.0)
    counts = [after - b for after, b in zip(served(stack), before, strict=True)]
    assert set(statuses) == {200} and sum(counts) == len(statuses)
    assert even(counts), counts
    metrics = stack.client.get("/metrics").text
    assert metrics.count("medserve_replica_requests_total{") == 2


@pytest.mark.slow
def test_a_worker_killed_under_load_fails_no_request_and_rebalances_on_return(stack) -> None:
    wait_until(lambda: both_ready(stack), 30, "both replicas ready")
    statuses = load(stack.url, 4.5, during=lambda: stack.kill_worker(0))
    assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    replicas = stack.client.get("/v1/models/echo").json()["replicas"]
    dead = next(r for r in replicas if r["url"] == stack.worker_urls[0])
    assert not dead["ready"] and dead["reason"] in ("worker unreachable", "worker unavailable")

    stack.workers[0].start()  # the same port: discovery probes it back
    wait_until(lambda: both_ready(stack), 60, "the restarted replica back in rotation")
    before = served(stack)
    statuses = load(stack.url, 3.0)
    counts = [after - b for after, b in zip(served(stack), before, strict=True)]
    assert set(statuses) == {200} and even(counts), counts
