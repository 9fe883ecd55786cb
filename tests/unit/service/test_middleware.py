"""The gateway middleware on a tiny ASGI app: request ids, body cap, auth, last-resort 500."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson

from core.settings import GatewaySettings
from service.auth import Authenticator, RateLimiter
from service.metrics import GatewayMetrics
from service.middleware import GatewayMiddleware


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"].endswith("/boom"):
        raise RuntimeError("patient Jane Doe, MRN 123")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


def call(method: str, path: str, *, keys: str = "", **kwargs: Any) -> httpx.Response:
    settings = GatewaySettings(api_keys=keys)
    wrapped = GatewayMiddleware(
        app, max_body_bytes=100, max_inflight=64, metrics=GatewayMetrics(),
        authenticator=Authenticator(settings), limiter=RateLimiter(settings),
    )  # fmt: skip

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=wrapped, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def test_every_answer_carries_a_request_id_and_a_safe_caller_id_is_kept() -> None:
    fresh = call("GET", "/x")
    assert fresh.status_code == 200 and len(fresh.headers["x-request-id"]) == 32
    kept = call("GET", "/x", headers={"X-Request-ID": "trace-42"})
    assert kept.headers["x-request-id"] == "trace-42"
    unsafe = call("GET", "/x", headers={"X-Request-ID": "a b\nc"})
    assert unsafe.headers["x-request-id"] != "a b\nc"


def test_bodies_over_the_cap_are_413_declared_or_streamed() -> None:
    assert call("POST", "/x", content=b"x" * 50).text == "50"
    declared = call("POST", "/x", content=b"x" * 500)
    assert declared.status_code == 413 and "MEDSERVE_MAX_BODY_MB" in declared.text

    async def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 40

    streamed = call("POST", "/x", content=chunks())
    assert streamed.status_code == 413


def test_keys_are_checked_before_any_route_and_probes_stay_open() -> None:
    denied = call("GET", "/v1/models", keys="k1")
    assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
    assert orjson.loads(denied.content)["error"]["code"] == "unauthorized"
    assert call("GET", "/v1/models", keys="k1", headers={"X-API-Key": "k1"}).status_code == 200
    assert call("GET", "/livez", keys="k1").status_code == 200


def test_a_crash_is_a_safe_500_envelope_with_the_request_id() -> None:
    answer = call("GET", "/boom", headers={"X-Request-ID": "r-9"})
    assert answer.status_code == 500
    error = orjson.loads(answer.content)["error"]
    assert error == {"code": "internal", "message": "internal error; see the server log",
                     "request_id": "r-9"}  # fmt: skip
    assert "Jane" not in answer.text
    oip = call("GET", "/v2/boom")
    assert orjson.loads(oip.content) == {"error": "internal error; see the server log"}
