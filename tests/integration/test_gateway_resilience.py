"""Overload, timeouts and a dying worker, seen through the gateway (real worker processes)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

# A small queue, one item per batch and a fast health poll; shared with other modules that
# pass the same settings (one stack per session).
FRAGILE = {"max_queue_size": 2, "max_batch_size": 1, "health_interval_s": 0.25}


@pytest.fixture(scope="module")
def stack(embedded_stack):
    return embedded_stack(["echo"], **FRAGILE)


def _body(delay_ms: float = 0, rows: int = 1) -> dict:
    return {
        "inputs": [
            {"name": "INPUT0", "datatype": "FP32", "shape": [rows, 2], "data": [1.0, 2.0] * rows}
        ],
        "parameters": {"delay_ms": delay_ms},
    }


def _post(url: str, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(url + "/v2/models/echo/infer", json=body, headers=headers, timeout=30)


def _in_background(fn, *args) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn(*args)))
    thread.start()
    return thread, out


def _running(stack) -> None:
    """Wait until a batch is in predict (the worker's stats, read through the gateway)."""
    for _ in range(500):
        stats = stack.client.get("/v2/models/echo/stats").json()["model_stats"][0]
        if stats["in_flight"]:
            return
        time.sleep(0.01)
    raise AssertionError("the blocking request never started")


def test_full_queue_is_503_with_retry_after_and_the_next_request_works(stack) -> None:
    blocker, _ = _in_background(_post, stack.url, _body(delay_ms=1500))
    _running(stack)  # the blocker is in predict; the queue holds at most 2 more
    threads = [_in_background(_post, stack.url, _body(delay_ms=10)) for _ in range(6)]
    for thread, _ in threads:
        thread.join()
    blocker.join()
    answers = [out[0] for _, out in threads]
    statuses = sorted(a.status_code for a in answers)
    assert 503 in statuses and 200 in statuses, statuses
    refused = next(a for a in answers if a.status_code == 503)
    assert int(refused.headers["retry-after"]) >= 1
    assert "queue" in refused.json()["error"]
    assert refused.headers["x-request-id"]
    assert _post(stack.url, _body()).status_code == 200


def test_request_past_its_timeout_is_504_and_the_next_request_works(stack) -> None:
    blocker, _ = _in_background(_post, stack.url, _body(delay_ms=1200))
    _running(stack)
    late = _post(stack.url, _body(), headers={"X-Medserve-Timeout-S": "0.2"})
    blocker.join()
    assert late.status_code == 504, late.text
    assert "error" in late.json()
    assert _post(stack.url, _body()).status_code == 200


def test_killed_worker_makes_readyz_503_until_it_restarts(stack) -> None:
    assert stack.client.get("/readyz").status_code == 200
    stack.kill_worker(0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ready = stack.client.get("/readyz")
        if ready.status_code == 503:
            break
        time.sleep(0.1)
    assert ready.status_code == 503
    assert ready.json()["models"]["echo"]["ready"] is False
    down = _post(stack.url, _body())
    assert down.status_code == 503 and int(down.headers["retry-after"]) >= 1
    assert "not ready" in down.json()["error"]
    listed = stack.client.get("/v1/models/echo").json()
    assert listed["ready"] is False
    gauge = stack.client.get("/metrics").text
    assert 'medserve_model_ready{model="echo"} 0.0' in gauge

    stack.restart_worker(0)
    assert stack.client.get("/readyz").json()["models"]["echo"]["ready"] is True
    back = _post(stack.url, _body())
    assert back.status_code == 200, f"{back.text}\n{stack.logs()}"
    assert 'medserve_model_ready{model="echo"} 1.0' in stack.client.get("/metrics").text


def test_client_disconnect_at_the_gateway_drops_the_queued_work(stack) -> None:
    def stats() -> dict:
        return stack.client.get("/v2/models/echo/stats").json()["model_stats"][0]

    before = stats()
    blocker, _ = _in_background(_post, stack.url, _body(delay_ms=1500))
    _running(stack)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(stack.url + "/v2/models/echo/infer", json=_body(), timeout=0.3)
    blocker.join()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and stats()["cancelled"] == before["cancelled"]:
        time.sleep(0.05)
    after = stats()
    assert after["cancelled"] == before["cancelled"] + 1
    assert after["inference_stats"]["success"]["count"] == (
        before["inference_stats"]["success"]["count"] + 1
    )  # only the blocker ran
    assert _post(stack.url, _body()).status_code == 200
