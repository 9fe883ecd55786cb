"""Route tables: discovery from MEDSERVE_WORKER_URLS, and a static route the worker cannot serve."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from service.embedded_redis import free_port
from tests.conftest import CLI, ROOT, clean_env, settings_env, wait_for

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
