"""Routes: OpenAI-compatible chat and text completions (`/v1/chat/completions`,
`/v1/completions`) for the LLMs the platform serves: relayed to vLLM when it serves the model
(streaming chunk by chunk), else run on the worker hosting it (`service.openai_compat`). API keys
and rate limits apply as on every route. The OpenAI-shaped model list is `GET /v1/models`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError

from core.errors import BadRequest, InvalidInput, ModelNotFound, UpstreamError
from core.settings import GatewaySettings
from core.validation import describe
from service.deps import LLMDep, ModelsDep, RequestIdDep, SettingsDep
from service.model_router import VLLM_MODEL, ModelRouter
from service.openai_compat import in_process, openai_body
from service.schemas.openai import CHAT_EXAMPLE, COMPLETION_EXAMPLE, ChatRequest, CompletionRequest
from workers.runtime.families import contract
from workers.runtime.llm_client import LLMClient

router = APIRouter(tags=["openai"])

PLATFORM_MODEL = VLLM_MODEL


def vllm_name(settings: GatewaySettings, model: str) -> str | None:
    """The name vLLM knows `model` by, or None when vLLM does not serve it here."""
    if not settings.vllm_base_url:
        return None
    served = settings.vllm_model or PLATFORM_MODEL
    return served if model in {PLATFORM_MODEL, served} else None


def llm_names(models: ModelRouter, settings: GatewaySettings) -> list[str]:
    """Every LLM this gateway serves for OpenAI clients (on workers or on vLLM)."""
    names = {PLATFORM_MODEL} if settings.vllm_base_url else set()
    for name in models.routes:
        manifest = models.manifests.get(name)
        if manifest is not None and getattr(contract(manifest.family), "OPENAI", False):
            names.add(name)
    return sorted(names)


def _not_served(model: str, models: ModelRouter, settings: GatewaySettings) -> ModelNotFound:
    served = llm_names(models, settings)
    listed = ", ".join(repr(n) for n in served) or "none"
    return ModelNotFound(
        f"model '{model[:100]}' is not served for OpenAI clients here (served: {listed}); host "
        "an LLM on a worker (e.g. MEDSERVE_MODELS=medval-4b) or set MEDSERVE_VLLM_BASE_URL"
    )


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


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise BadRequest(
            "the body is not JSON; send an OpenAI-style JSON request with "
            "Content-Type: application/json"
        ) from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidInput("send 'model': a served LLM (see GET /v1/models, the `data` list)")
    return body


async def _relay_vllm(llm: LLMClient, path: str, body: dict[str, Any]) -> Response:
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


async def _serve(
    request: Request, settings: GatewaySettings, models: ModelRouter, llm: LLMClient | None,
    kind: str, request_id: str,
) -> Response:  # fmt: skip
    body = await _json_body(request)
    model = body["model"]
    served = vllm_name(settings, model)
    if served is not None and llm is not None:
        return await _relay_vllm(llm, f"/{kind}", {**body, "model": served})
    if model not in llm_names(models, settings):
        raise _not_served(model, models, settings)
    schema: type[ChatRequest | CompletionRequest] = (
        ChatRequest if kind == "chat/completions" else CompletionRequest
    )
    try:
        parsed = schema.model_validate(body)
    except ValidationError as exc:  # 400, as OpenAI answers an invalid request
        raise BadRequest("invalid request: " + describe(exc, schema)) from None
    answer = await in_process(models, parsed, request_id)
    if parsed.stream:
        return StreamingResponse(answer.events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})  # fmt: skip
    return Response(orjson.dumps(answer.document()), media_type="application/json")


@router.post(
    "/v1/chat/completions",
    summary="OpenAI-compatible chat completions (LLMs on workers or vLLM)",
    openapi_extra=openai_body(ChatRequest, CHAT_EXAMPLE),
)
async def chat_completions(
    request: Request, settings: SettingsDep, models: ModelsDep, llm: LLMDep,
    request_id: RequestIdDep,
) -> Response:  # fmt: skip
    return await _serve(request, settings, models, llm, "chat/completions", request_id)


@router.post(
    "/v1/completions",
    summary="OpenAI-compatible text completions (LLMs on workers or vLLM)",
    openapi_extra=openai_body(CompletionRequest, COMPLETION_EXAMPLE),
)
async def completions(
    request: Request, settings: SettingsDep, models: ModelsDep, llm: LLMDep,
    request_id: RequestIdDep,
) -> Response:  # fmt: skip
    return await _serve(request, settings, models, llm, "completions", request_id)
