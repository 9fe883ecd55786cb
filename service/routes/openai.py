"""Routes: OpenAI-compatible pass-through (`/v1/chat/completions`, `/v1/completions`) to the
models the platform runs on vLLM. API keys and rate limits apply as on every route (gateway
middleware); streaming (SSE) is relayed chunk by chunk.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from core.errors import (
    BadRequest,
    InvalidInput,
    ModelNotFound,
    Unavailable,
    UpstreamError,
)
from core.settings import GatewaySettings
from service.deps import LLMDep, SettingsDep
from workers.runtime.llm_client import LLMClient

router = APIRouter(tags=["openai"])

PLATFORM_MODEL = "medval-4b"  # the platform's name for the model vLLM serves


def served_name(settings: GatewaySettings, model: Any) -> str:
    """Platform or served model name -> the name vLLM knows; 404/503 otherwise."""
    if not settings.vllm_base_url:
        raise Unavailable(
            "no vLLM engine is configured (set MEDSERVE_VLLM_BASE_URL); the OpenAI-compatible "
            "routes serve only models that run on vLLM"
        )
    served = settings.vllm_model or PLATFORM_MODEL
    if not isinstance(model, str) or not model:
        raise InvalidInput(f"send 'model': one of {PLATFORM_MODEL!r}, {served!r}")
    if model not in {PLATFORM_MODEL, served}:
        raise ModelNotFound(
            f"model '{model[:100]}' does not run on vLLM here; use {PLATFORM_MODEL!r} or {served!r}"
        )
    return served


def _upstream_message(payload: bytes) -> str:
    """vLLM's own error message, cut before any echo of the request's values."""
    try:
        data = json.loads(payload)
        message = data.get("error", {}).get("message") if "error" in data else data.get("message")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(message, str):
        return ""
    message = re.split(r"\[type=|input_value|input=", message)[0]
    return message.strip()[:300]


async def _forward(
    request: Request, settings: GatewaySettings, llm: LLMClient | None, path: str
) -> Response:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise BadRequest("the body is not JSON; send an OpenAI-style JSON request") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    body["model"] = served_name(settings, body.get("model"))
    assert llm is not None
    upstream = await llm.open("POST", path, body)
    if upstream.status != 200:
        payload = await upstream.read()
        upstream.release()
        detail = _upstream_message(payload)
        message = f"the vLLM engine refused the request (HTTP {upstream.status})"
        message += f": {detail}" if detail else ""
        if 400 <= upstream.status < 500:
            raise InvalidInput(message)
        raise UpstreamError(message)
    if body.get("stream"):
        return StreamingResponse(
            _relay(upstream),
            media_type=upstream.headers.get("Content-Type", "text/event-stream"),
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    payload = await upstream.read()
    upstream.release()
    return Response(payload, media_type="application/json")


async def _relay(upstream: Any) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
    finally:
        upstream.release()


@router.post("/v1/chat/completions", summary="OpenAI-compatible chat completions (vLLM models)")
async def chat_completions(request: Request, settings: SettingsDep, llm: LLMDep) -> Response:
    return await _forward(request, settings, llm, "/chat/completions")


@router.post("/v1/completions", summary="OpenAI-compatible text completions (vLLM models)")
async def completions(request: Request, settings: SettingsDep, llm: LLMDep) -> Response:
    return await _forward(request, settings, llm, "/completions")
