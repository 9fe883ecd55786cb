"""Worker process lifecycle: readiness follows model loading; SIGTERM drains in-flight work."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from core.errors import ModelNotReady, Unavailable
from tests.harness import WorkerProcess
from workers.runtime.client import SyncOIPClient


def test_ready_stays_false_while_a_model_cannot_load(tmp_path: Path) -> None:
    worker = WorkerProcess(["echo"], tmp_path, {"MEDSERVE_ALLOW_RANDOM_WEIGHTS": "false"})
    try:
        worker.wait_ready(path="/v2/health/live")
        for _ in range(100):  # until the loader has given up on the missing weights
            index = httpx.post(worker.url + "/v2/repository/index").json()
            if index[0]["state"] != "LOADING":
                break
            time.sleep(0.05)
        assert index[0]["state"] == "UNAVAILABLE"
        assert "medserve models tiny echo" in index[0]["reason"]
        assert httpx.get(worker.url + "/v2/health/ready").status_code == 503
        assert httpx.get(worker.url + "/v2/models/echo/ready").status_code == 503
        with SyncOIPClient(worker.url) as client, pytest.raises(ModelNotReady) as info:
            client.infer("echo", {"INPUT0": np.ones((1, 1), np.float32)})
        assert info.value.retry_after == 1
    finally:
        worker.stop()


def test_sigterm_finishes_in_flight_and_queued_work_then_exits(tmp_path: Path) -> None:
    worker = WorkerProcess(["echo"], tmp_path, {"MEDSERVE_DRAIN_TIMEOUT_S": "10"})
    worker.wait_ready()
    results: dict[str, Any] = {}

    def call(name: str, delay_ms: int) -> None:
        with SyncOIPClient(worker.url) as client:
            x = np.full((2, 3), len(name), np.float32)
            try:
                out = client.infer("echo", {"INPUT0": x}, {"delay_ms": delay_ms})
                results[name] = (out.outputs["OUTPUT0"], json.loads(out.parameters["batch_sizes"]))
            except Exception as exc:  # recorded and asserted below
                results[name] = exc

    def wait_for(key: str) -> None:
        for _ in range(500):
            stats = httpx.get(worker.url + "/v2/models/echo/stats").json()["model_stats"][0]
            if stats[key]:
                return
            time.sleep(0.01)
        raise AssertionError(f"{key} never became non-zero")

    running = threading.Thread(target=call, args=("running", 1500))
    running.start()
    wait_for("in_flight")
    queued = threading.Thread(target=call, args=("queued", 0))
    queued.start()
    wait_for("queue_depth")
    worker.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    with SyncOIPClient(worker.url) as client, pytest.raises((Unavailable, ModelNotReady)):
        client.infer("echo", {"INPUT0": np.ones((1, 1), np.float32)})
    running.join(10)
    queued.join(10)
    # uvicorn re-raises the signal once shut down cleanly: killed-by-SIGTERM is the clean exit
    assert worker.proc.wait(15) in (0, -signal.SIGTERM)
    for name in ("running", "queued"):
        assert not isinstance(results[name], Exception), results[name]
        np.testing.assert_array_equal(results[name][0], np.full((2, 3), len(name), np.float32))
    worker.stop()
    assert "draining" in worker.logs()
