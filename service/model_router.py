"""Which workers host which model, and the calls to them: the gateway's route table.

Routes come from `MEDSERVE_ROUTES` (model -> worker URL or URLs) and from discovery
(`service.discovery`, which also keeps readiness current). A model served by several workers
has one replica per worker (`service.replicas`): each request goes to one of them, and one that
refuses or drops it is ejected and the request retried on another. Every call to a worker goes
through one `OIPClient` per worker URL: typed inference for family routes, raw bytes for /v2
forwarding.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
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
    from_status,
)
from core.settings import GatewaySettings
from model_store.manifest import Manifest
from service.metrics import GatewayMetrics
from service.replicas import (
    MAX_ATTEMPTS,
    RETRY_CODES,
    Replica,
    ReplicaCollector,
    any_replica,
    pick,
    retry_elsewhere,
)
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
    """One routed model, its replicas, and what discovery last learned about it."""

    name: str
    replicas: list[Replica] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    engine: str = "worker"  # worker: OIP v2; vllm: an OpenAI-compatible engine (no OIP)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Servable: at least one replica takes requests."""
        return any(r.ready for r in self.replicas)

    @property
    def state(self) -> str:
        if self.ready:
            return "READY"
        return self.replicas[0].state if self.replicas else "UNAVAILABLE"

    @property
    def reason(self) -> str | None:
        if self.ready:
            return None
        return self.replicas[0].reason if self.replicas else "no worker hosts this model"

    @property
    def url(self) -> str:
        """The first replica's URL (the one URL of a single-replica route)."""
        return self.replicas[0].url if self.replicas else ""

    def replica(self, url: str) -> Replica | None:
        return next((r for r in self.replicas if r.url == url), None)


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
            name: ModelRoute(name, [Replica(u) for u in dict.fromkeys(map(base_url, urls))])
            for name, urls in settings.routes.items()
        }
        if settings.vllm_base_url:  # the LLM vLLM serves is routed too (its readiness: vLLM's)
            name = VLLM_MODEL
            vllm = [Replica(base_url(settings.vllm_base_url))]
            self.routes[name] = ModelRoute(name, vllm, engine="vllm")
        self._clients: dict[str, OIPClient] = {}
        if metrics is not None:
            metrics.registry.register(ReplicaCollector(self._replica_table))

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()

    async def forget(self, url: str) -> None:
        """Close the client of a worker that left (a pod gone from its headless Service)."""
        client = self._clients.pop(url, None)
        if client is not None:
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
        """One OIP inference on a replica of `model` (options as `OIPClient.infer`); retried
        on another replica when the chosen one refuses or drops it."""
        route = self.oip_route(model)
        start = time.perf_counter()
        tried: list[Replica] = []
        try:
            while True:
                replica = self._choose(route, tried)
                replica.inflight += 1
                try:
                    client = self.client(replica.url)
                    answer = await client.infer(model, inputs, parameters, **options)
                except MedserveError as error:
                    if not self._retry(route, replica, error, tried):
                        raise
                    continue
                finally:
                    replica.inflight -= 1
                    replica.requests += 1
                return answer
        finally:
            self._observe(model, start)

    async def forward(
        self, route: ModelRoute, method: str, path: str, body: bytes,
        headers: dict[bytes, bytes], request_id: str,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:  # fmt: skip
        """One OIP request to a replica of `route` as raw bytes; its answer as is. A replica
        that refuses, drops or declines it (503: shutting down, not loaded) hands it on."""
        out = {
            name.decode(): headers[name].decode("latin-1")
            for name in FORWARD_REQUEST_HEADERS
            if name in headers
        }
        out[REQUEST_ID_HEADER] = request_id
        start = time.perf_counter()
        tried: list[Replica] = []
        try:
            while True:
                replica = self._choose(route, tried)
                replica.inflight += 1
                try:
                    answer = await self.client(replica.url).request(method, path, body, out)
                except MedserveError as error:
                    if not self._retry(route, replica, error, tried):
                        raise
                    continue
                finally:
                    replica.inflight -= 1
                    replica.requests += 1
                status, back, data = answer
                code = back.get(ERROR_CODE_HEADER) if status == 503 else None
                declined = code in RETRY_CODES  # shutting down or not loaded: no work was done
                if declined and self._retry(
                    route, replica, from_status(503, "declined", code), tried
                ):
                    continue
                break
        finally:
            self._observe(route.name, start)
        kept = [
            (name.encode(), back[name].encode("latin-1"))
            for name in FORWARD_RESPONSE_HEADERS
            if name in back
        ]
        return status, kept, data

    async def broadcast(
        self, route: ModelRoute, method: str, path: str, body: bytes, request_id: str
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The same request to every replica (repository load/unload): the first failure's
        answer, else the last answer."""
        if not route.replicas:
            self.route(route.name)  # ModelNotReady: no worker hosts it
        answers = []
        for replica in list(route.replicas):
            client = self.client(replica.url)
            status, back, data = await client.request(
                method, path, body, {REQUEST_ID_HEADER: request_id}
            )
            kept = [(n.encode(), back[n].encode("latin-1")) for n in FORWARD_RESPONSE_HEADERS
                    if n in back]  # fmt: skip
            answers.append((status, kept, data))
        failed = [a for a in answers if a[0] != 200]
        return failed[0] if failed else answers[-1]

    def _choose(self, route: ModelRoute, tried: list[Replica]) -> Replica:
        """A ready replica not tried yet; before any try, any replica (metadata, load)."""
        replica = pick(route.replicas, tried)
        if replica is None and not tried:
            replica = any_replica(route.replicas)
        if replica is None:
            if tried:  # every ready replica failed this request: say so
                raise ModelNotReady(
                    f"no replica of model '{route.name}' could take the request "
                    f"({len(tried)} tried); retry shortly",
                    retry_after=self.retry_after,
                )
            self.route(route.name)  # ModelNotFound / ModelNotReady with the reason
            raise ModelNotReady(f"model '{route.name}' has no worker", retry_after=self.retry_after)
        return replica

    def _retry(
        self, route: ModelRoute, replica: Replica, error: MedserveError, tried: list[Replica]
    ) -> bool:
        """Count the failure; True when the request may go to another replica."""
        if self.metrics is not None:
            self.metrics.upstream_errors.labels(route.name, error.code).inc()
        if not retry_elsewhere(error):
            return False
        replica.failures += 1
        tried.append(replica)
        again = len(tried) < MAX_ATTEMPTS and pick(route.replicas, tried) is not None
        if again or isinstance(error, Unreachable):  # the last one left stays until a probe
            self.eject(route, replica, f"worker {error.code.replace('_', ' ')}")
        if again and self.metrics is not None:
            self.metrics.upstream_retries.labels(route.name).inc()
        return again

    def _observe(self, model: str, start: float) -> None:
        if self.metrics is not None:
            self.metrics.upstream_latency.labels(model).observe(time.perf_counter() - start)

    def _replica_table(self) -> Iterator[tuple[str, list[Replica]]]:
        for name, route in list(self.routes.items()):
            yield name, list(route.replicas)

    # -- views -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, ModelRoute]:
        return dict(sorted(self.routes.items()))

    def served(self) -> str:
        return ", ".join(sorted(self.routes)) or "(none)"

    def mark_down(self, url: str, reason: str) -> None:
        """A worker refused a connection: its replicas are out until discovery sees it again."""
        for route in self.routes.values():
            for replica in route.replicas:
                if replica.url == url:
                    self.eject(route, replica, reason)

    def eject(self, route: ModelRoute, replica: Replica, reason: str) -> None:
        if not replica.ready:
            return
        replica.ejections += 1
        log.warning("replica ejected", extra={"model": route.name, "replica": replica.url,
                                              "reason": reason})  # fmt: skip
        self.set_replica(route, replica, False, "UNAVAILABLE", reason)

    def set_state(self, route: ModelRoute, ready: bool, state: str, reason: str | None) -> None:
        """Every replica of `route` at once (an engine with one endpoint, such as vLLM)."""
        for replica in route.replicas:
            self.set_replica(route, replica, ready, state, reason)

    def set_replica(
        self, route: ModelRoute, replica: Replica, ready: bool, state: str, reason: str | None
    ) -> None:
        replica.ready, replica.state, replica.reason = ready, state, reason
        replica.checked_at = time.time()
        if self.metrics is not None:
            self.metrics.model_ready.labels(route.name).set(1.0 if route.ready else 0.0)

    def devices(self) -> dict[str, str]:
        """Worker URL -> device, from the placement plan `serve` passed (empty otherwise)."""
        return {base_url(u): d for u, d in self.settings.worker_devices.items()}
