"""Routes: the Open Inference Protocol v2 on the gateway, forwarded to the worker hosting a model.

Bodies travel as raw bytes (JSON or binary tensors, gzip or not) with their OIP headers, and
the worker's status, headers and body come back unchanged, so `tritonclient.http` works
against the gateway as against a worker. `infer` is a plain ASGI app (no pydantic, no
dependency injection): it is the hot path. Errors are `{"error": msg}` as OIP clients expect.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from core.constants import VERSION
from core.errors import MedserveError, render
from service.deps import ModelsDep, ReadinessDep
from service.model_router import ModelRouter
from workers.runtime.server_info import SERVER_NAME

router = APIRouter(tags=["open inference protocol v2"])
ModelName = Annotated[str, Path(description="A served model.", examples=["echo"])]
ModelVersion = Annotated[str, Path(description="The model's version.", examples=["1"])]

_JSON = "application/json"
_Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
_OIP_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "An OIP v2 inference request: JSON, or a JSON header of "
            "`Inference-Header-Content-Length` bytes followed by binary tensors."
        ),
        "content": {
            "application/json": {
                "schema": {"type": "object"},
                "example": {
                    "inputs": [
                        {"name": "INPUT0", "datatype": "FP32", "shape": [1, 4],
                         "data": [1.0, 2.0, 3.0, 4.0]}
                    ]
                },
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}  # fmt: skip


def _path_of(scope: Scope) -> str:
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope["path"]
    query = scope.get("query_string")
    return f"{path}?{query.decode('latin-1')}" if query else path


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _unless_disconnected(call: Awaitable[_Answer], receive: Receive) -> _Answer | None:
    """Await the worker; if our client disconnects first, drop the upstream request too
    (closing that connection makes the worker drop the queued work)."""
    task = asyncio.ensure_future(call)
    listener = asyncio.ensure_future(receive())
    try:
        await asyncio.wait((task, listener), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not listener.done():
            listener.cancel()
    if not task.done() and listener.result().get("type") == "http.disconnect":
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, MedserveError):
            await task
        return None
    return await task


class ForwardInfer:
    """`POST /v2/models/{m}[/versions/{v}]/infer`: raw bytes to the worker and back."""

    def __init__(self, path: str) -> None:
        self.path = path  # the route template, for metrics and access logs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self
        models: ModelRouter = scope["app"].state.models
        request_id = scope["state"]["request_id"]
        try:
            route = models.oip_route(scope["path_params"]["model_name"])
            body = await _read_body(receive)
            if body is None:
                return  # the client went away; nothing to forward
            call = models.forward(
                route, "POST", _path_of(scope), body, dict(scope["headers"]), request_id
            )
            answer = await _unless_disconnected(call, receive)
            if answer is None:
                return
            status, headers, data = answer
        except MedserveError as error:
            status, headers, data = render(error, oip=True, request_id=request_id)
        headers.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


_PLAIN = ForwardInfer("/v2/models/{model_name}/infer")
_VERSIONED = ForwardInfer("/v2/models/{model_name}/versions/{model_version}/infer")
_INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
for _forward in (_PLAIN, _VERSIONED):
    router.add_route(
        _forward.path,
        _forward,  # type: ignore[arg-type]  # an ASGI app, which Starlette routes accept
        methods=["POST"],
        include_in_schema=False,
    )


class InferFastPath:
    """Takes `POST /v2/models/{m}[/versions/{v}]/infer` straight to `ForwardInfer`, past
    Starlette's error, telemetry and body-limit layers and its router; everything else goes on
    to `app`. The gateway middleware outside it still does request ids, the body cap, API keys,
    rate limits, load shedding, metrics and the access log for both."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _INFER_PATH.fullmatch(scope["path"])
            if match is not None:
                name, version = match.groups()
                if version is None:
                    scope["path_params"] = {"model_name": name}
                    await _PLAIN(scope, receive, send)
                else:
                    scope["path_params"] = {"model_name": name, "model_version": version}
                    await _VERSIONED(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _raw(status: int, headers: list[tuple[bytes, bytes]], data: bytes) -> Response:
    response = Response(data, status)
    for key, value in headers:
        response.headers[key.decode()] = value.decode("latin-1")
    return response


async def _forward_get(request: Request, models: ModelRouter, model: str) -> Response:
    """Metadata, readiness and stats: answered by the worker hosting the model."""
    request_id = request.scope["state"]["request_id"]
    route = models.routes.get(model)
    if route is None:
        models.route(model)  # raises ModelNotFound with the list of served models
        raise AssertionError  # unreachable
    try:
        status, headers, data = await models.forward(
            route, "GET", _path_of(request.scope), b"", {}, request_id
        )
    except MedserveError as error:
        status, headers, data = render(error, oip=True, request_id=request_id)
    return _raw(status, headers, data)


@router.get("/v2", summary="Server metadata")
async def server_metadata() -> dict[str, Any]:
    return {
        "name": SERVER_NAME,
        "version": VERSION,
        "extensions": [
            "binary_tensor_data",
            "model_repository",
            "statistics",
            "model_configuration",
        ],
    }


@router.get("/v2/health/live", summary="Server liveness")
async def server_live() -> dict[str, bool]:
    return {"live": True}


@router.get("/v2/health/ready", summary="Server readiness: every routed model ready (else 503)")
async def server_ready(readiness: ReadinessDep) -> Response:
    ready = readiness.ready()
    return Response(orjson.dumps({"ready": ready}), 200 if ready else 503, media_type=_JSON)


@router.post("/v2/repository/index", summary="Every routed model and its state")
async def repository_index(models: ModelsDep) -> list[dict[str, Any]]:
    entries = []
    for name, route in models.snapshot().items():
        entry: dict[str, Any] = {"name": name, "state": route.state}
        versions = (route.metadata or {}).get("versions")
        if versions:
            entry["version"] = str(versions[-1])
        if route.reason:
            entry["reason"] = route.reason
        entries.append(entry)
    return entries


@router.get("/v2/models/{model_name}", summary="Model metadata (inputs, outputs, provenance)")
async def model_metadata(model_name: ModelName, request: Request, models: ModelsDep) -> Response:
    return await _forward_get(request, models, model_name)


@router.get("/v2/models/{model_name}/versions/{model_version}", summary="Model metadata")
async def model_version_metadata(
    model_name: ModelName, model_version: ModelVersion, request: Request, models: ModelsDep
) -> Response:
    return await _forward_get(request, models, model_name)


@router.get("/v2/models/{model_name}/ready", summary="Model readiness (200 ready, else 503)")
async def model_ready(model_name: ModelName, request: Request, models: ModelsDep) -> Response:
    return await _forward_get(request, models, model_name)


@router.get("/v2/models/{model_name}/versions/{model_version}/ready", summary="Model readiness")
async def model_version_ready(
    model_name: ModelName, model_version: ModelVersion, request: Request, models: ModelsDep
) -> Response:
    return await _forward_get(request, models, model_name)


@router.get("/v2/models/{model_name}/stats", summary="Model statistics (queue, batches)")
async def model_stats(model_name: ModelName, request: Request, models: ModelsDep) -> Response:
    return await _forward_get(request, models, model_name)


@router.get(
    "/v2/models/{model_name}/config",
    summary="Triton model configuration (max_batch_size, dynamic_batching, inputs, outputs)",
)
async def model_config(model_name: ModelName, request: Request, models: ModelsDep) -> Response:
    return await _forward_get(request, models, model_name)


async def _repository(request: Request, models: ModelRouter, model: str, action: str) -> Response:
    request_id = request.scope["state"]["request_id"]
    route = models.routes.get(model)
    if route is None or route.engine != "worker":
        models.oip_route(model)  # ModelNotFound, or "runs on vLLM"
        raise AssertionError  # unreachable
    path = f"/v2/repository/models/{quote(model, safe='')}/{action}"
    try:  # every replica loads or unloads
        status, headers, data = await models.broadcast(
            route, "POST", path, await request.body(), request_id
        )
    except MedserveError as error:
        status, headers, data = render(error, oip=True, request_id=request_id)
    return _raw(status, headers, data)


@router.post(
    "/v2/repository/models/{model_name}/load",
    summary="Repository extension: (re)load a model on its worker (answers when ready)",
)
async def repository_load(model_name: ModelName, request: Request, models: ModelsDep) -> Response:
    return await _repository(request, models, model_name, "load")


@router.post(
    "/v2/repository/models/{model_name}/unload",
    summary="Repository extension: unload a model on its worker (its requests then get 503)",
)
async def repository_unload(model_name: ModelName, request: Request, models: ModelsDep) -> Response:
    return await _repository(request, models, model_name, "unload")


# Documentation only: the ASGI routes above answer these paths first.
@router.post(
    "/v2/models/{model_name}/infer",
    summary="Inference (OIP v2, JSON or binary tensors)",
    openapi_extra=_OIP_BODY,
)
async def model_infer_doc(model_name: ModelName) -> dict[str, Any]:
    raise AssertionError("served by ForwardInfer")


@router.post(
    "/v2/models/{model_name}/versions/{model_version}/infer",
    summary="Inference on one model version",
    openapi_extra=_OIP_BODY,
)
async def model_version_infer_doc(
    model_name: ModelName, model_version: ModelVersion
) -> dict[str, Any]:
    raise AssertionError("served by ForwardInfer")
