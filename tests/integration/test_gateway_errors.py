"""One error envelope, request ids, JSON logs without bodies, metrics, body cap and the docs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import httpx
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from core.settings import Settings
from service.app import create_app

MARKER = "PATIENT-7731-MARKER"


class Order(BaseModel):
    count: int = Field(ge=1)
    name: str


@pytest.fixture(scope="module")
def stack(embedded_stack):
    return embedded_stack(["echo"])


@pytest.fixture(scope="module")
def probe_client():
    """An in-process gateway with routes that fail in the ways the handlers must cover."""
    probe = APIRouter()

    @probe.post("/v1/probe/validate")
    async def validate(order: Order) -> dict[str, int]:
        return {"count": order.count}

    @probe.get("/v1/probe/crash")
    async def crash() -> None:
        raise RuntimeError(f"secret detail {MARKER}")

    app = create_app(Settings(max_body_mb=0.001))
    app.include_router(probe)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _envelope(answer: httpx.Response, status: int, code: str) -> dict:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"code", "message", "request_id"}
    assert error["code"] == code
    assert error["request_id"] == answer.headers["x-request-id"]
    return error


def test_request_id_is_honoured_or_generated_on_every_response(stack) -> None:
    given = stack.client.get("/v1/models", headers={"X-Request-ID": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    fresh = stack.client.get("/livez")
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])
    unsafe = stack.client.get("/livez", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 1], "data": [1]}]}
    infer = stack.client.post(
        "/v2/models/echo/infer", json=body, headers={"X-Request-ID": "trace-43"}
    )
    assert infer.status_code == 200 and infer.headers["x-request-id"] == "trace-43"
    missing = stack.client.post("/v2/models/nope/infer", json=body)
    assert missing.headers["x-request-id"]


def test_logs_are_json_with_the_request_id_and_never_the_body(stack) -> None:
    body = {
        "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 1], "data": [1]}],
        "parameters": {"note": MARKER},
    }
    stack.client.post("/v2/models/echo/infer", json=body)
    bad = {**body, "inputs": [{**body["inputs"][0], "shape": [2, 2]}]}
    stack.client.post("/v2/models/echo/infer", json=bad, headers={"X-Request-ID": "trace-bad"})
    stack.client.post("/v2/models/echo/infer", content=MARKER.encode())  # not JSON at all
    stack.client.get("/v1/models", headers={"X-Request-ID": "trace-log"})
    deadline = time.monotonic() + 10  # the access line is written just after the answer
    while True:
        lines = [line for line in stack.gateway.logs().splitlines() if line.startswith("{")]
        records = [json.loads(line) for line in lines]
        traced = [r for r in records if r.get("request_id") == "trace-log"]
        if traced or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert traced and traced[-1]["route"] == "/v1/models"
    assert traced[-1]["status"] == 200 and "duration_ms" in traced[-1]
    failed = [r for r in records if r.get("request_id") == "trace-bad"]
    assert failed and failed[-1]["route"] == "/v2/models/{model_name}/infer"
    assert failed[-1]["status"] == 400
    assert MARKER not in stack.gateway.logs()
    assert all(MARKER not in w.logs() for w in stack.workers)


def test_errors_share_one_envelope(stack) -> None:
    error = _envelope(stack.client.get("/v1/models/nope"), 404, "model_not_found")
    assert "echo" in error["message"]
    _envelope(stack.client.get("/no/such/route"), 404, "not_found")
    _envelope(stack.client.delete("/v1/models"), 405, "method_not_allowed")
    traced = stack.client.get("/v1/models/nope", headers={"X-Request-ID": "r-1"})
    assert _envelope(traced, 404, "model_not_found")["request_id"] == "r-1"


def test_validation_error_is_422_naming_the_field_without_echoing_it(probe_client) -> None:
    answer = probe_client.post("/v1/probe/validate", json={"count": 0, "secret": MARKER})
    error = _envelope(answer, 422, "invalid_input")
    assert "count" in error["message"] and "name" in error["message"]
    assert MARKER not in answer.text


def test_unhandled_error_is_500_without_a_trace(probe_client) -> None:
    answer = probe_client.get("/v1/probe/crash")
    error = _envelope(answer, 500, "internal")
    assert MARKER not in answer.text and "Traceback" not in answer.text
    assert "server log" in error["message"]


def test_body_over_the_cap_is_413(probe_client) -> None:
    big = b"x" * 4096
    declared = probe_client.post("/v2/models/echo/infer", content=big)
    assert declared.status_code == 413 and "MEDSERVE_MAX_BODY_MB" in declared.json()["error"]

    def chunks():
        yield big[:2048]
        yield big[2048:]

    streamed = probe_client.post("/v1/probe/validate", content=chunks())
    _envelope(streamed, 413, "payload_too_large")


def test_metrics_count_requests_by_route_and_status(stack) -> None:
    stack.client.get("/v1/models/nope")
    text = stack.client.get("/metrics").text
    assert (
        'medserve_http_requests_total{method="GET",route="/v1/models/{name}",status="404"}' in text
    )
    assert "medserve_http_request_duration_seconds_bucket" in text
    assert 'medserve_upstream_duration_seconds_count{model="echo"}' in text
    assert 'medserve_model_ready{model="echo"} 1.0' in text


def test_docs_render_from_local_assets(stack) -> None:
    page = stack.client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assets = re.findall(r'(?:src|href)="(/docs/static/[^"]+)"', page.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    assert "cdn." not in page.text
    for asset in assets:
        answer = stack.client.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 1000, asset
    spec = stack.client.get("/openapi.json").json()
    for path in ("/readyz", "/v1/models", "/v1/models/{name}", "/v2/models/{model_name}/infer"):
        assert path in spec["paths"]


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs chromium (apt-get install chromium)"
)
def test_docs_render_in_a_headless_browser_offline(stack) -> None:
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--virtual-time-budget=15000",
         "--dump-dom", stack.url + "/docs"],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert 'data-path="/v1/models"' in dom, dom[-2000:]
    assert 'data-path="/v2/models/{model_name}/infer"' in dom
    assert "Unable to render" not in dom
