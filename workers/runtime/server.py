"""The model worker's HTTP server: Open Inference Protocol v2 (JSON and binary tensors).

Raw Starlette, no pydantic on the request path. The infer route is `workers.runtime.infer`; this
module holds the app factory, the metadata, health, repository, statistics and metrics routes,
and the lifespan that loads models and drains on shutdown.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.constants import VERSION
from core.errors import BadRequest, MedserveError, NotFound, Unavailable
from core.settings import WorkerSettings
from workers.runtime.adapter import ModelAdapter
from workers.runtime.infer import InferEndpoint, error_parts, request_id_from
from workers.runtime.metrics import make_registry, render
from workers.runtime.server_info import EXTENSIONS, SERVER_NAME
from workers.runtime.state import Resolver, WorkerState, batch_config


def _json(doc: Any, request: Request, status: int = 200) -> Response:
    rid = request_id_from(request.headers.get("x-request-id"))
    return Response(
        orjson.dumps(doc), status, headers={"x-request-id": rid}, media_type="application/json"
    )


def _error(error: MedserveError, request: Request) -> Response:
    status, headers, body = error_parts(error)
    response = Response(body, status, media_type="application/json")
    for key, value in headers:
        response.headers[key.decode()] = value.decode()
    response.headers["x-request-id"] = request_id_from(request.headers.get("x-request-id"))
    return response


def _state(request: Request) -> WorkerState:
    state: WorkerState = request.app.state.worker
    return state


async def server_metadata(request: Request) -> Response:
    doc = {"name": SERVER_NAME, "version": VERSION, "extensions": EXTENSIONS}
    return _json(doc, request)


async def live(request: Request) -> Response:
    return _json({"live": True}, request)


async def ready(request: Request) -> Response:
    state = _state(request)
    state.ensure_started()
    ok = state.ready
    return _json({"ready": ok}, request, 200 if ok else 503)


async def model_metadata(request: Request) -> Response:
    p = request.path_params
    try:
        return _json(_state(request).adapter(p["model"], p.get("version")).metadata(), request)
    except MedserveError as exc:
        return _error(exc, request)


async def model_config(request: Request) -> Response:
    state = _state(request)
    p = request.path_params
    try:
        adapter = state.adapter(p["model"], p.get("version"))
    except MedserveError as exc:
        return _error(exc, request)
    return _json(adapter.config(state.batchers[adapter.name].config
                                if adapter.name in state.batchers
                                else batch_config(state.settings, adapter)), request)  # fmt: skip


async def repository_load(request: Request) -> Response:
    """The repository extension: (re)load a hosted model; answers when it is ready."""
    state = _state(request)
    state.ensure_started()
    try:
        name = state.adapter(request.path_params["model"]).name
    except MedserveError as exc:
        return _error(exc, request)
    loaded = await asyncio.get_running_loop().run_in_executor(state.pool, state.load, name)
    if not loaded:
        reason = state.reasons.get(name, "see the worker log")
        return _error(Unavailable(f"model '{name}' failed to load: {reason}"), request)
    return _json({}, request)


async def repository_unload(request: Request) -> Response:
    state = _state(request)
    try:
        name = state.adapter(request.path_params["model"]).name
    except MedserveError as exc:
        return _error(exc, request)
    await asyncio.get_running_loop().run_in_executor(state.pool, state.unload, name)
    return _json({}, request)


async def model_ready(request: Request) -> Response:
    state = _state(request)
    state.ensure_started()
    p = request.path_params
    try:
        name = state.adapter(p["model"], p.get("version")).name
    except MedserveError as exc:
        return _error(exc, request)
    ok = state.states[name] == "READY" and not state.draining
    return _json({"name": name, "ready": ok}, request, 200 if ok else 503)


async def model_stats(request: Request) -> Response:
    state = _state(request)
    state.ensure_started()
    p = request.path_params
    try:
        return _json({"model_stats": state.stats(p.get("model"), p.get("version"))}, request)
    except MedserveError as exc:
        return _error(exc, request)


async def repository_index(request: Request) -> Response:
    state = _state(request)
    state.ensure_started()
    entries = state.index()
    body = await request.body()
    if body:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(BadRequest("the index request body must be JSON"), request)
        if isinstance(doc, dict) and doc.get("ready"):
            entries = [e for e in entries if e["state"] == "READY"]
    return _json(entries, request)


async def metrics(request: Request) -> Response:
    return Response(
        render(request.app.state.registry), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


async def not_found(request: Request, exc: Exception) -> Response:
    if getattr(exc, "status_code", 404) == 405:
        return _error(BadRequest(f"{request.method} is not allowed on {request.url.path}"), request)
    return _error(NotFound(f"no route {request.url.path}; see GET /v2 for this server"), request)


def _routes(infer: InferEndpoint) -> list[Route]:
    base = "/v2/models/{model}"
    versioned = base + "/versions/{version}"
    routes = [  # infer first: the hot path should not scan the other routes
        Route(base + "/infer", infer, methods=["POST"]),
        Route(versioned + "/infer", infer, methods=["POST"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/repository/index", repository_index, methods=["POST"]),
        Route("/v2/repository/models/{model}/load", repository_load, methods=["POST"]),
        Route("/v2/repository/models/{model}/unload", repository_unload, methods=["POST"]),
        Route("/v2/models/stats", model_stats, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    for prefix in (base, versioned):
        routes += [
            Route(prefix + "/ready", model_ready, methods=["GET"]),
            Route(prefix + "/stats", model_stats, methods=["GET"]),
            Route(prefix + "/config", model_config, methods=["GET"]),
            Route(prefix, model_metadata, methods=["GET"]),
        ]
    return routes


def create_worker_app(
    settings: WorkerSettings,
    adapters: dict[str, ModelAdapter],
    *,
    resolve: Resolver | None = None,
    grpc_address: str | None = None,
) -> Starlette:
    """The ASGI app of a worker hosting `adapters` (loaded in the background at start-up).

    `resolve(name) -> ResolvedModel` finds weights; by default the model store under
    `settings.model_root`, building tiny random weights when allowed and none were pulled.
    With `grpc_address` (host:port) the same models are served over OIP gRPC too.
    """
    state = WorkerState(settings, adapters, resolve)

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        state.ensure_started()
        grpc_server = None
        if grpc_address:
            from workers.runtime.grpc_server import start_grpc

            grpc_server = await start_grpc(state, grpc_address)
        yield
        await state.shutdown()
        if grpc_server is not None:
            await grpc_server.stop(grace=1.0)

    app = Starlette(
        routes=_routes(InferEndpoint(state)),
        lifespan=lifespan,
        exception_handlers={HTTPException: not_found},
    )
    app.state.worker = state
    app.state.registry = make_registry(state.metrics_snapshot)
    return app
