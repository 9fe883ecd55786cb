"""The gateway: `create_app(settings)` builds the FastAPI app (routes, errors, auth, docs, metrics).

It never imports torch: model work happens in workers, reached through `ModelRouter`.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from core.constants import VERSION
from core.errors import InternalError, InvalidInput, MedserveError, http_status_of, render
from core.heap import settle_heap
from core.settings import GatewaySettings
from core.validation import describe_errors, fields_of
from model_store.manifest import Manifest
from service.auth import Authenticator, RateLimiter
from service.discovery import Discovery
from service.grpc_gateway import GatewayService, start_grpc_gateway
from service.metrics import GatewayMetrics
from service.middleware import GatewayMiddleware, is_oip
from service.model_router import ModelRouter
from service.readiness import Readiness
from service.routes import ROUTER_MODULES
from service.routes.oip import InferFastPath
from workers.jobs.control import JobControl
from workers.runtime.llm_client import LLMClient

log = logging.getLogger("medserve.gateway")

DESCRIPTION = """\
One API for published medical-imaging models (RoentGen-v2, MedVAE, Merlin, SRRG, MedVAL).

* **/v1**: task routes per model family and batch jobs; errors are
  `{"error": {"code", "message", "request_id"}}`.
* **/v2**: the Open Inference Protocol v2 (KServe v2 / Triton REST, JSON and binary tensors),
  forwarded to the worker hosting the model; `tritonclient.http` works unchanged.
* Auth: `Authorization: Bearer <key>` or `X-API-Key: <key>` when the server sets API keys.

Generated images are synthetic and say so; every inference says which weights served it.
"""


def _static_dir() -> Path | None:
    """Swagger UI's JS and CSS from the installed `fastapi-offline` wheel (no CDN needed)."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    path = Path(fastapi_offline.__file__).parent / "static"
    return path if (path / "swagger-ui-bundle.js").exists() else None


def _request_id(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return str(value) if value else None


def _body_model(request: Request) -> Any:
    field = getattr(request.scope.get("route"), "body_field", None)
    info = getattr(field, "field_info", None)
    return getattr(info, "annotation", None)


def validation_message(request: Request, exc: RequestValidationError) -> str:
    """Each field and its problem, the closest valid name for an unknown one, no values."""
    errors = list(exc.errors())
    content_type = request.headers.get("content-type", "")
    body_is_not_an_object = any(
        tuple(e.get("loc", ())) == ("body",) and e.get("type") in ("model_attributes_type",
                                                                   "dict_type")
        for e in errors
    )  # fmt: skip
    if body_is_not_an_object and "json" not in content_type:
        return "the body must be a JSON object: send it with Content-Type: application/json"
    model = _body_model(request)
    valid = fields_of(model) if isinstance(model, type) and issubclass(model, BaseModel) else []
    return "invalid request: " + describe_errors(errors, valid, limit=10)


def _answer(
    request: Request, error: MedserveError, headers: dict[str, str] | None = None
) -> Response:
    status, raw, body = render(error, oip=is_oip(request.url.path), request_id=_request_id(request))
    response = Response(body, status, headers={k.decode(): v.decode() for k, v in raw})
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _install_error_handlers(app: FastAPI) -> None:
    async def on_medserve(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, MedserveError)
        return _answer(request, exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _answer(request, InvalidInput(validation_message(request, exc)))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        cls = http_status_of(exc.status_code)
        message = exc.detail if isinstance(exc.detail, str) else cls.code.replace("_", " ")
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}; see /docs for the API"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs"
        return _answer(request, cls(message), dict(exc.headers or {}))

    async def on_any(request: Request, exc: Exception) -> Response:
        # Starlette re-raises it after this answer; the gateway middleware logs it once.
        return _answer(request, InternalError("internal error; see the server log"))

    app.add_exception_handler(MedserveError, on_medserve)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_any)


def _install_docs(app: FastAPI, auth_enabled: bool) -> None:
    static = _static_dir()
    if static is not None:
        app.mount("/docs/static", StaticFiles(directory=static), name="docs-static")
        js, css, icon = (
            f"/docs/static/{name}"
            for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")
        )
    else:  # falls back to the CDN FastAPI uses by default
        js = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
        css = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"
        icon = "https://fastapi.tiangolo.com/img/favicon.png"

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="medserve API",
            swagger_js_url=js,
            swagger_css_url=css,
            swagger_favicon_url=icon,
        )

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            # Swagger's Authorize button; with auth off, "no key" is a valid choice too.
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
            schema["security"] = [{"bearer": []}, {"apiKey": []}]
            if not auth_enabled:
                schema["security"].append({})
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


class GatewayApp(FastAPI):
    """FastAPI with the gateway's own layers outermost: `front` (the gateway middleware) around
    the OIP inference fast path around FastAPI's usual stack."""

    front: Callable[[ASGIApp], ASGIApp]

    def build_middleware_stack(self) -> ASGIApp:
        return self.front(InferFastPath(super().build_middleware_stack()))


def create_app(settings: GatewaySettings, manifests: dict[str, Manifest] | None = None) -> FastAPI:
    """The gateway app; `manifests` defaults to the ones shipped in `model_store/manifests`."""
    metrics = GatewayMetrics()
    models = ModelRouter(settings, manifests, metrics)
    discovery = Discovery(models)
    llm = (
        LLMClient(settings.vllm_base_url, settings.vllm_api_key, settings.upstream_timeout_s)
        if settings.vllm_base_url
        else None
    )
    readiness = Readiness(settings, discovery, llm)
    authenticator = Authenticator(settings)
    limiter = RateLimiter(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.redis_url:
            app.state.jobs = JobControl.from_settings(settings)
        await discovery.start()
        await readiness.start()
        grpc_server = None
        if settings.grpc_port:
            service = GatewayService(models, readiness, authenticator, limiter, metrics)
            grpc_server = await start_grpc_gateway(service, settings)
        settle_heap()
        log.info("gateway started", extra={"models": sorted(models.routes)})
        try:
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(grace=1.0)
            await readiness.close()
            await discovery.close()
            await models.close()
            if llm is not None:
                await llm.close()
            await limiter.close()

    app = GatewayApp(
        title="medserve",
        version=VERSION,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.models = models
    app.state.readiness = readiness
    app.state.llm = llm
    app.state.jobs = None
    app.state.metrics = metrics
    _install_error_handlers(app)
    for module_name in ROUTER_MODULES:
        module = importlib.import_module(module_name)
        app.include_router(module.router)
    _install_docs(app, authenticator.enabled)
    app.front = functools.partial(
        GatewayMiddleware,
        max_body_bytes=int(settings.max_body_mb * (1 << 20)),
        max_inflight=settings.max_inflight,
        metrics=metrics,
        authenticator=authenticator,
        limiter=limiter,
    )
    return app
