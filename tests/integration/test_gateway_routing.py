"""Route tables: discovery from MEDSERVE_WORKER_URLS, and a static route the worker cannot serve."""

from __future__ import annotations

import json
import subprocess

import httpx
import numpy as np
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from core.net import free_port
from core.settings import Settings
from service.app import create_app
from service.deps import ModelsDep, RequestIdDep
from tests.harness import CLI, ROOT, clean_env, settings_env, wait_for

BODY = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 2], "data": [4, 2]}]}


@pytest.fixture(scope="module")
def stack(embedded_stack):
    return embedded_stack(["echo"])


def _gateway(tmp_path, **settings):
    port = free_port()
    log = (tmp_path / "gateway.log").open("wb")
    env = clean_env(**settings_env({"health_interval_s": 0.25, **settings}))
    proc = subprocess.Popen(
        [*CLI, "gateway", "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    return proc, f"http://127.0.0.1:{port}", tmp_path / "gateway.log"


def test_models_are_discovered_from_worker_urls(stack, tmp_path) -> None:
    proc, url, log = _gateway(tmp_path, worker_urls=stack.worker_urls)
    try:
        wait_for(url + "/readyz", 60, lambda r: r.status_code == 200, log.read_text)
        listed = httpx.get(url + "/v1/models").json()["models"]
        assert [m["name"] for m in listed] == ["echo"]
        assert listed[0]["weights"]["kind"] == "random-tiny"
        answer = httpx.post(url + "/v2/models/echo/infer", json=BODY)
        assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [4.0, 2.0]
    finally:
        proc.terminate()
        proc.wait(15)


def test_a_route_to_a_worker_without_the_model_is_not_ready_with_a_reason(stack, tmp_path) -> None:
    routes = {"echo": stack.worker_urls[0], "roentgen-v2": stack.worker_urls[0]}
    proc, url, log = _gateway(tmp_path, routes=json.dumps(routes))
    try:
        wait_for(
            url + "/readyz",
            60,
            lambda r: r.status_code == 503 and r.json()["models"]["echo"]["ready"],
            log.read_text,
        )
        missing = httpx.get(url + "/readyz").json()["models"]["roentgen-v2"]
        assert missing["ready"] is False and "does not host" in missing["reason"]
        refused = httpx.post(url + "/v2/models/roentgen-v2/infer", json=BODY)
        assert refused.status_code == 503 and "retry-after" in refused.headers
        assert httpx.post(url + "/v2/models/echo/infer", json=BODY).status_code == 200
    finally:
        proc.terminate()
        proc.wait(15)


def test_models_dep_infer_reaches_the_worker_and_maps_its_errors(stack) -> None:
    probe = APIRouter()

    @probe.post("/v1/probe/{model}")
    async def run(model: str, models: ModelsDep, request_id: RequestIdDep) -> dict:
        name = "INPUT0" if model != "wrong-input" else "OTHER"
        out = await models.infer(
            "echo" if model == "wrong-input" else model,
            {name: np.array([[1.5, 2.5]], np.float32)},
            request_id=request_id,
        )
        return {"data": out.outputs["OUTPUT0"].tolist(), "weights": out.parameters["weights"]}

    app = create_app(Settings(routes={"echo": stack.worker_urls[0]}))
    app.include_router(probe)
    with TestClient(app) as client:
        ok = client.post("/v1/probe/echo")
        assert ok.status_code == 200
        assert ok.json() == {"data": [[1.5, 2.5]], "weights": "random-tiny"}
        unknown = client.post("/v1/probe/nope").json()["error"]
        assert unknown["code"] == "model_not_found"
        invalid = client.post("/v1/probe/wrong-input")
        assert invalid.status_code == 422
        assert "INPUT0" in invalid.json()["error"]["message"]
        assert (
            'medserve_upstream_duration_seconds_count{model="echo"}' in client.get("/metrics").text
        )


def test_a_worker_on_a_unix_socket_serves_a_gateway_routed_to_unix_path(tmp_path) -> None:
    """MEDSERVE_WORKER_UDS: the worker serves the same app on a unix socket beside its port."""
    from tests.harness import WorkerProcess

    sock = tmp_path / "w.sock"
    (tmp_path / "models").mkdir()
    with WorkerProcess(["echo"], tmp_path / "models", env={"MEDSERVE_WORKER_UDS": str(sock)}) as w:
        assert sock.exists()
        proc, url, log = _gateway(tmp_path, routes=json.dumps({"echo": f"unix:{sock}"}))
        try:
            wait_for(url + "/readyz", 60, lambda r: r.status_code == 200, log.read_text)
            answer = httpx.post(url + "/v2/models/echo/infer", json=BODY)
            assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [4.0, 2.0]
            assert httpx.post(w.url + "/v2/models/echo/infer", json=BODY).status_code == 200
        finally:
            proc.terminate()
            proc.wait(15)
    assert not sock.exists()  # removed on a clean stop
