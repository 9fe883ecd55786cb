"""Which worker hosts which model, and the calls to it: the gateway's route table.

Routes come from `MEDSERVE_ROUTES` (model -> worker URL) and from discovery
(`service.discovery`, which also keeps readiness current). Every call to a worker goes through
one `OIPClient` per worker URL: typed inference for family routes, raw bytes for /v2
forwarding.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.constants import (
    ERROR_CODE_HEADER,
    OIP_HEADER_LENGTH,
    PRIORITY_HEADER,
    REQUEST_ID_HEADER,
    TIMEOUT_HEADER,
)
from core.errors import (
    BadRequest,
    InvalidInput,
    MedserveError,
    ModelNotFound,
    ModelNotReady,
    Unreachable,
)
from core.settings import GatewaySettings
from model_store.manifest import Manifest
from service.metrics import GatewayMetrics
from workers.runtime.client import OIPClient
from workers.runtime.families import load_manifests
from workers.runtime.oip import InferResponse

log = logging.getLogger("medserve.routing")
VLLM_MODEL = "medval-4b"  # the platform's name for the model a configured vLLM serves

# Headers the gateway passes to a worker and back, unchanged (OIP forwarding).
FORWARD_REQUEST_HEADERS = (
    b"content-type",
    b"content-encoding",
    b"accept-encoding",
    OIP_HEADER_LENGTH.encode(),
    PRIORITY_HEADER.encode(),
    TIMEOUT_HEADER.encode(),
)
FORWARD_RESPONSE_HEADERS = (
    "content-type",
    "content-encoding",
    OIP_HEADER_LENGTH,
    "retry-after",
    ERROR_CODE_HEADER,
)


@dataclass
class ModelRoute:
    """One routed model and what discovery last learned about it."""

    name: str
    url: str
    discovered: bool = False
    ready: bool = False
    state: str = "UNKNOWN"
    reason: str | None = None
    metadata: dict[str, Any] | None = None
    checked_at: float = 0.0
    timeouts: int = 0
    engine: str = "worker"  # worker: OIP v2; vllm: an OpenAI-compatible engine (no OIP)
    extra: dict[str, Any] = field(default_factory=dict)


def base_url(url: str) -> str:
    return url.rstrip("/")


class ModelRouter:
    """The gateway's view of its workers; what family routes get as `ModelsDep`."""

    def __init__(
        self,
        settings: GatewaySettings,
        manifests: dict[str, Manifest] | None = None,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.manifests = manifests if manifests is not None else load_manifests()
        self.metrics = metrics
        self.routes: dict[str, ModelRoute] = {
            name: ModelRoute(name, base_url(url)) for name, url in settings.routes.items()
        }
        if settings.vllm_base_url:  # the LLM vLLM serves is routed too (its readiness: vLLM's)
            name = VLLM_MODEL
            self.routes[name] = ModelRoute(name, base_url(settings.vllm_base_url), engine="vllm")
        self._clients: dict[str, OIPClient] = {}

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()

    def client(self, url: str) -> OIPClient:
        """The one pooled client of a worker URL."""
        client = self._clients.get(url)
        if client is None:
            client = OIPClient(url, timeout_s=self.settings.upstream_timeout_s)
            self._clients[url] = client
        return client

    # -- the contract family routes use ----------------------------------------------------

    def known(self, model: str) -> bool:
        return model in self.routes

    def is_ready(self, model: str) -> bool:
        route = self.routes.get(model)
        return route is not None and route.ready

    def manifest(self, model: str, family: str | None = None) -> Manifest:
        """The manifest of `model`; with `family`, refuse a model of another family."""
        if model not in self.manifests:
            raise ModelNotFound(f"model '{model}' has no manifest; served models: {self.served()}")
        manifest = self.manifests[model]
        if family is not None and manifest.family != family:
            same = sorted(n for n, m in self.manifests.items() if m.family == family)
            raise InvalidInput(
                f"model '{model}' is a {manifest.family} model, not {family}; "
                f"use one of: {', '.join(same) or 'none'}"
            )
        return manifest

    def route(self, model: str) -> ModelRoute:
        """The route of a servable model, or ModelNotFound / ModelNotReady."""
        route = self.routes.get(model)
        if route is None:
            raise ModelNotFound(
                f"model '{model}' is not served here; served models: {self.served()}"
            )
        if not route.ready:
            raise ModelNotReady(
                f"model '{model}' is not ready yet ({route.reason or route.state.lower()}); "
                "retry shortly",
                retry_after=self.retry_after,
            )
        return route

    def oip_route(self, model: str) -> ModelRoute:
        """The route of a model that speaks OIP (not one served by an OpenAI-style engine)."""
        route = self.route(model)
        if route.engine != "worker":
            raise BadRequest(
                f"model '{model}' runs on {route.engine}, which does not speak the Open Inference "
                "Protocol; use /v1/chat/completions or /v1/completions"
            )
        return route

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.settings.health_interval_s))

    async def infer(
        self,
        model: str,
        inputs: dict[str, np.ndarray],
        parameters: dict[str, Any] | None = None,
        **options: Any,
    ) -> InferResponse:
        """One OIP inference on the worker hosting `model` (options as `OIPClient.infer`)."""
        route = self.oip_route(model)
        start = time.perf_counter()
        try:
            return await self.client(route.url).infer(model, inputs, parameters, **options)
        except MedserveError as error:
            self._failed(route, error)
            raise
        finally:
            self._observe(model, start)

    async def forward(
        self, route: ModelRoute, method: str, path: str, body: bytes,
        headers: dict[bytes, bytes], request_id: str,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:  # fmt: skip
        """One OIP request to the worker hosting `route` as raw bytes; its answer as is."""
        out = {
            name.decode(): headers[name].decode("latin-1")
            for name in FORWARD_REQUEST_HEADERS
            if name in headers
        }
        out[REQUEST_ID_HEADER] = request_id
        start = time.perf_counter()
        try:
            status, back, data = await self.client(route.url).request(method, path, body, out)
        except MedserveError as error:
            self._failed(route, error)
            raise
        finally:
            self._observe(route.name, start)
        kept = [
            (name.encode(), back[name].encode("latin-1"))
            for name in FORWARD_RESPONSE_HEADERS
            if name in back
        ]
        return status, kept, data

    def _failed(self, route: ModelRoute, error: MedserveError) -> None:
        if self.metrics is not None:
            self.metrics.upstream_errors.labels(route.name, error.code).inc()
        if isinstance(error, Unreachable):
            self.mark_down(route.url, "worker unreachable")

    def _observe(self, model: str, start: float) -> None:
        if self.metrics is not None:
            self.metrics.upstream_latency.labels(model).observe(time.perf_counter() - start)

    # -- views -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, ModelRoute]:
        return dict(sorted(self.routes.items()))

    def served(self) -> str:
        return ", ".join(sorted(self.routes)) or "(none)"

    def mark_down(self, url: str, reason: str) -> None:
        """A worker refused a connection: its models are not ready until discovery sees it."""
        for route in self.routes.values():
            if route.url == url and route.ready:
                log.warning("model not ready", extra={"model": route.name, "reason": reason})
                self.set_state(route, False, "UNAVAILABLE", reason)

    def set_state(self, route: ModelRoute, ready: bool, state: str, reason: str | None) -> None:
        route.ready, route.state, route.reason = ready, state, reason
        route.checked_at = time.time()
        if self.metrics is not None:
            self.metrics.model_ready.labels(route.name).set(1.0 if ready else 0.0)
