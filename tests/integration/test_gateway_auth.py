"""API keys, tenants, the per-key rate limit (counters in a real Redis) and the bind refusal."""

from __future__ import annotations

import subprocess

import httpx
import numpy as np
import pytest
import redis
import tritonclient.http as triton_http
from fastapi import APIRouter
from fastapi.testclient import TestClient

from core.constants import RATE_LIMIT_PREFIX as RATE_KEY_PREFIX
from core.net import free_port
from core.settings import Settings
from service.app import create_app
from service.deps import TenantDep
from tests.harness import CLI, ROOT, clean_env

KEYS = ["k-alpha:alpha", "k-beta"]
BODY = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 1], "data": [3]}]}


@pytest.fixture(scope="module")
def stack(embedded_stack):
    return embedded_stack(["echo"], api_keys=KEYS)


def test_protected_routes_need_a_valid_key_with_a_clear_401(stack) -> None:
    for path in ("/v1/models", "/v1/models/echo"):
        answer = httpx.get(stack.url + path)
        assert answer.status_code == 401
        error = answer.json()["error"]
        assert error["code"] == "unauthorized"
        assert "Authorization: Bearer" in error["message"]
        assert error["request_id"] == answer.headers["x-request-id"]
        assert answer.headers["www-authenticate"] == "Bearer"
    wrong = httpx.get(stack.url + "/v1/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "not valid" in wrong.json()["error"]["message"]
    oip = httpx.post(stack.url + "/v2/models/echo/infer", json=BODY)
    assert oip.status_code == 401 and isinstance(oip.json()["error"], str)


def test_bearer_and_x_api_key_both_work(stack) -> None:
    bearer = httpx.get(stack.url + "/v1/models", headers={"Authorization": "Bearer k-alpha"})
    assert bearer.status_code == 200
    header = httpx.post(
        stack.url + "/v2/models/echo/infer", json=BODY, headers={"X-API-Key": "k-beta"}
    )
    assert header.status_code == 200 and header.json()["outputs"][0]["data"] == [3.0]


def test_tritonclient_passes_the_key_as_a_header(stack) -> None:
    client = triton_http.InferenceServerClient(stack.url.removeprefix("http://"))
    tensor = triton_http.InferInput("INPUT0", [1, 2], "FP32")
    tensor.set_data_from_numpy(np.ones((1, 2), np.float32))
    result = client.infer("echo", [tensor], headers={"Authorization": "Bearer k-alpha"})
    assert result.as_numpy("OUTPUT0").tolist() == [[1.0, 1.0]]
    client.close()


def test_probes_metrics_and_docs_stay_open(stack) -> None:
    for path in ("/livez", "/readyz", "/metrics", "/docs", "/openapi.json", "/v2/health/ready"):
        assert httpx.get(stack.url + path).status_code == 200, path
    schemes = httpx.get(stack.url + "/openapi.json").json()["components"]["securitySchemes"]
    assert set(schemes) == {"bearer", "apiKey"}


def test_tenant_comes_from_the_key() -> None:
    probe = APIRouter()

    @probe.get("/v1/whoami")
    async def whoami(tenant: TenantDep) -> dict[str, str]:
        return {"tenant": tenant}

    app = create_app(Settings(api_keys=KEYS))
    app.include_router(probe)
    with TestClient(app) as client:
        alpha = client.get("/v1/whoami", headers={"Authorization": "Bearer k-alpha"})
        beta = client.get("/v1/whoami", headers={"X-API-Key": "k-beta"})
        assert alpha.json() == {"tenant": "alpha"}
        assert beta.json() == {"tenant": "default"}
    with TestClient(create_app(Settings())) as open_client:
        open_client.app.include_router(probe)  # type: ignore[attr-defined]
        assert open_client.get("/v1/whoami").json() == {"tenant": "default"}


def test_rate_limit_is_429_with_retry_after_and_counts_in_redis(embedded_stack, redis_url) -> None:
    limited = embedded_stack(
        ["echo"], api_keys=["k-rate:rated"], rate_limit_per_minute=3, redis_url=redis_url
    )
    headers = {"Authorization": "Bearer k-rate"}
    # 8 requests span at most one minute boundary, so some window sees more than 3.
    answers = [httpx.get(limited.url + "/v1/models", headers=headers) for _ in range(8)]
    refused = [a for a in answers if a.status_code == 429]
    assert refused and answers[0].status_code == 200
    assert 1 <= int(refused[0].headers["retry-after"]) <= 61
    assert refused[0].json()["error"]["code"] == "rate_limited"
    keys = redis.Redis.from_url(redis_url).keys(RATE_KEY_PREFIX + "*")
    assert keys, "the counters live in Redis"
    assert b"k-rate" not in b"".join(keys)  # keys are fingerprints, never the key itself
    assert 'medserve_rate_limited_total{tenant="rated"}' in limited.client.get("/metrics").text


@pytest.mark.parametrize("command", ["gateway", "serve"])
def test_no_keys_refuses_a_public_bind_unless_insecure(command: str) -> None:
    refused = subprocess.run(
        [*CLI, command, "--host", "0.0.0.0", "--port", str(free_port())],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "--insecure" in refused.stderr and "MEDSERVE_API_KEYS" in refused.stderr
    Settings(insecure=True).check_bind("0.0.0.0")
    Settings(api_keys=["k"]).check_bind("0.0.0.0")
    Settings().check_bind("127.0.0.1")


def test_rate_limit_counts_in_memory_without_redis() -> None:
    app = create_app(Settings(api_keys=["k-mem"], rate_limit_per_minute=2))
    headers = {"X-API-Key": "k-mem"}
    with TestClient(app) as client:
        statuses = [client.get("/v1/models", headers=headers).status_code for _ in range(7)]
    assert statuses[0] == 200 and 429 in statuses
