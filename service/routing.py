"""Which worker hosts which model, and whether it is ready: the gateway's route table.

Routes come from `MEDSERVE_ROUTES` (model -> worker URL) and from discovery: every URL in
`MEDSERVE_WORKER_URLS` is asked `POST /v2/repository/index`. A background poller refreshes
readiness every `health_interval_s`; a worker that stops answering makes its models not
ready (so `/readyz` turns 503) until it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import numpy as np

from core.errors import (
    DeadlineExceeded,
    MedserveError,
    ModelNotFound,
    ModelNotReady,
    Unavailable,
)
from core.settings import Settings
from model_store.manifest import Manifest, load_manifests
from service.metrics import GatewayMetrics
from workers.runtime.oip import InferResponse

if TYPE_CHECKING:
    from workers.runtime.client import OIPClient

log = logging.getLogger("medserve.routing")

TIMEOUTS_BEFORE_DOWN = 3  # a busy worker may answer a probe late; a dead one refuses at once


@dataclass
class ModelRoute:
    """One routed model and what the poller last learned about it."""

    name: str
    url: str
    discovered: bool = False
    ready: bool = False
    state: str = "UNKNOWN"
    reason: str | None = None
    metadata: dict[str, Any] | None = None
    checked_at: float = 0.0
    timeouts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _base(url: str) -> str:
    return url.rstrip("/")


class ModelRouter:
    """The gateway's view of its workers; what family routes get as `ModelsDep`."""

    def __init__(
        self,
        settings: Settings,
        manifests: dict[str, Manifest] | None = None,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.manifests = manifests if manifests is not None else load_manifests()
        self.metrics = metrics
        self.routes: dict[str, ModelRoute] = {
            name: ModelRoute(name, _base(url)) for name, url in settings.routes.items()
        }
        self.discovery_urls = [_base(u) for u in settings.worker_urls]
        self._discovered_once: set[str] = set()
        self._session: aiohttp.ClientSession | None = None
        self._clients: dict[str, OIPClient] = {}
        self._task: asyncio.Task[None] | None = None
        self._probe_timeout = aiohttp.ClientTimeout(total=max(2.0, 2 * settings.health_interval_s))
        self.upstream_timeout = aiohttp.ClientTimeout(total=settings.upstream_timeout_s)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=4.0),
            auto_decompress=False,
            timeout=self.upstream_timeout,
        )
        await self.poll_once()
        self._task = asyncio.create_task(self._poll_forever(), name="medserve-health-poller")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise Unavailable("the gateway is starting; retry in a moment", retry_after=1)
        return self._session

    # -- the contract family routes use ----------------------------------------------------

    def known(self, model: str) -> bool:
        return model in self.routes

    def is_ready(self, model: str) -> bool:
        route = self.routes.get(model)
        return route is not None and route.ready

    def manifest(self, model: str) -> Manifest:
        if model not in self.manifests:
            raise ModelNotFound(f"model '{model}' has no manifest; known models: {self._served()}")
        return self.manifests[model]

    def route(self, model: str) -> ModelRoute:
        """The route of a servable model, or ModelNotFound / ModelNotReady."""
        route = self.routes.get(model)
        if route is None:
            raise ModelNotFound(
                f"model '{model}' is not served here; served models: {self._served()}"
            )
        if not route.ready:
            raise ModelNotReady(
                f"model '{model}' is not ready yet ({route.reason or route.state.lower()}); "
                "retry shortly",
                retry_after=self.retry_after,
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
        *,
        priority: str = "interactive",
        timeout_s: float | None = None,
        request_id: str | None = None,
        outputs: list[str] | None = None,
    ) -> InferResponse:
        """Run one OIP inference on the worker hosting `model`; raises core.errors types."""
        route = self.route(model)
        client = self._client(route.url)
        start = time.perf_counter()
        try:
            return await client.infer(
                model,
                inputs,
                parameters,
                priority=priority,
                timeout_s=timeout_s,
                request_id=request_id,
                outputs=outputs,
            )
        except MedserveError as error:
            if self.metrics is not None:
                self.metrics.upstream_errors.labels(model, error.code).inc()
            if isinstance(error, Unavailable):
                self.mark_down(route.url, "worker unreachable")
            raise
        finally:
            if self.metrics is not None:
                self.metrics.upstream_latency.labels(model).observe(time.perf_counter() - start)

    # -- views -------------------------------------------------------------------------------

    def all_ready(self) -> bool:
        if not self.routes or set(self.discovery_urls) - self._discovered_once:
            return False
        return all(route.ready for route in self.routes.values())

    def snapshot(self) -> dict[str, ModelRoute]:
        return dict(sorted(self.routes.items()))

    def _served(self) -> str:
        return ", ".join(sorted(self.routes)) or "(none)"

    def _client(self, url: str) -> OIPClient:
        client = self._clients.get(url)
        if client is None:
            from workers.runtime.client import OIPClient

            client = OIPClient(url, timeout_s=self.settings.upstream_timeout_s)
            self._clients[url] = client
        return client

    def mark_down(self, url: str, reason: str) -> None:
        """A worker refused a connection: its models are not ready until the poller sees it."""
        for route in self.routes.values():
            if route.url == url and route.ready:
                log.warning("model not ready", extra={"model": route.name, "reason": reason})
                route.ready, route.state, route.reason = False, "UNAVAILABLE", reason
                self._gauge(route)

    # -- health polling ----------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_interval_s)
            try:
                await self.poll_once()
            except Exception as exc:  # never let the poller die
                log.error("health poll failed", exc_info=exc)

    async def poll_once(self) -> None:
        static: dict[str, list[ModelRoute]] = {}
        for route in self.routes.values():
            if not route.discovered:
                static.setdefault(route.url, []).append(route)
        probes = [self._discover(url) for url in self.discovery_urls]
        probes += [self._probe_worker(url, routes) for url, routes in static.items()]
        await asyncio.gather(*probes)

    async def _index(self, url: str) -> dict[str, dict[str, Any]] | None:
        """The worker's model index by name; None when it has no repository extension."""
        async with self.session.post(
            f"{url}/v2/repository/index", json={}, timeout=self._probe_timeout
        ) as resp:
            entries = await resp.json(content_type=None) if resp.status == 200 else None
        if not isinstance(entries, list):
            return None
        return {
            e["name"]: e for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)
        }

    async def _apply(self, route: ModelRoute, entry: dict[str, Any]) -> None:
        state = str(entry.get("state") or ("READY" if entry.get("ready") else "UNAVAILABLE"))
        reason = entry.get("reason") or None
        await self._set(route, state.upper() == "READY", state.upper(), reason)

    async def _probe_worker(self, url: str, routes: list[ModelRoute]) -> None:
        """Static routes: one index call per worker (states and reasons), else per-model probes."""
        try:
            index = await self._index(url)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            for route in routes:
                self._fail(route, exc)
            return
        if index is None:
            await asyncio.gather(*(self._probe(route) for route in routes))
            return
        for route in routes:
            entry = index.get(route.name)
            if entry is None:
                await self._set(route, False, "UNAVAILABLE", "its worker does not host this model")
            else:
                await self._apply(route, entry)

    async def _discover(self, url: str) -> None:
        try:
            index = await self._index(url)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            self._fail_discovered(url, exc)
            return
        if index is None:
            self._fail_discovered(url, None)
            return
        self._discovered_once.add(url)
        for name, entry in index.items():
            route = self.routes.get(name)
            if route is None:
                route = self.routes[name] = ModelRoute(name, url, discovered=True)
            elif not route.discovered:
                continue  # a static route wins over discovery
            route.url = url
            await self._apply(route, entry)

    def _fail_discovered(self, url: str, exc: BaseException | None) -> None:
        for route in self.routes.values():
            if route.discovered and route.url == url:
                self._fail(route, exc)

    async def _probe(self, route: ModelRoute) -> None:
        try:
            async with self.session.get(
                f"{route.url}/v2/models/{quote(route.name)}/ready", timeout=self._probe_timeout
            ) as resp:
                await resp.read()
                ready = resp.status == 200
        except (TimeoutError, aiohttp.ClientError) as exc:
            self._fail(route, exc)
            return
        await self._set(route, ready, "READY" if ready else "LOADING", None)

    def _fail(self, route: ModelRoute, exc: BaseException | None) -> None:
        if isinstance(exc, TimeoutError | asyncio.TimeoutError):
            route.timeouts += 1
            if route.timeouts < TIMEOUTS_BEFORE_DOWN:
                return
            reason = "worker does not answer its health check"
        elif exc is None:
            reason = "worker answered its index with an error"
        else:
            reason = "worker unreachable"
        if route.ready or route.reason != reason:
            log.warning("model not ready", extra={"model": route.name, "reason": reason})
        route.ready, route.state, route.reason = False, "UNAVAILABLE", reason
        route.checked_at = time.time()
        self._gauge(route)

    async def _set(self, route: ModelRoute, ready: bool, state: str, reason: str | None) -> None:
        route.timeouts = 0
        route.checked_at = time.time()
        became_ready = ready and not route.ready
        route.ready, route.state, route.reason = ready, state, reason
        if became_ready:
            log.info("model ready", extra={"model": route.name})
            route.metadata = await self._metadata(route)
        self._gauge(route)

    async def _metadata(self, route: ModelRoute) -> dict[str, Any] | None:
        try:
            async with self.session.get(
                f"{route.url}/v2/models/{quote(route.name)}", timeout=self._probe_timeout
            ) as resp:
                if resp.status != 200:
                    return None
                doc = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def _gauge(self, route: ModelRoute) -> None:
        if self.metrics is not None:
            self.metrics.model_ready.labels(route.name).set(1.0 if route.ready else 0.0)


# Headers the gateway passes to a worker and back, unchanged (OIP forwarding).
FORWARD_REQUEST_HEADERS = (
    b"content-type",
    b"content-encoding",
    b"accept-encoding",
    b"inference-header-content-length",
    b"x-medserve-priority",
    b"x-medserve-timeout-s",
)
FORWARD_RESPONSE_HEADERS = (
    "Content-Type",
    "Content-Encoding",
    "Inference-Header-Content-Length",
    "Retry-After",
    "X-Medserve-Error-Code",
)
_SKIP_AUTO = frozenset({"Content-Type", "Accept-Encoding", "Accept", "User-Agent"})


async def forward(
    models: ModelRouter,
    method: str,
    route: ModelRoute,
    path: str,
    body: bytes,
    headers: dict[bytes, bytes],
    request_id: str,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Send one OIP request to the worker hosting `route` as raw bytes; return its answer as is."""
    out_headers = {
        name.decode(): headers[name].decode("latin-1")
        for name in FORWARD_REQUEST_HEADERS
        if name in headers
    }
    out_headers["X-Request-ID"] = request_id
    start = time.perf_counter()
    try:
        async with models.session.request(
            method,
            route.url + path,
            data=body if body else None,
            headers=out_headers,
            skip_auto_headers=_SKIP_AUTO,
        ) as resp:
            data = await resp.read()
            status = resp.status
            back = [
                (name.lower().encode(), resp.headers[name].encode("latin-1"))
                for name in FORWARD_RESPONSE_HEADERS
                if name in resp.headers
            ]
    except aiohttp.ClientConnectorError:
        models.mark_down(route.url, "worker unreachable")
        raise Unavailable(
            f"the worker hosting model '{route.name}' cannot be reached; retry shortly",
            retry_after=models.retry_after,
        ) from None
    except aiohttp.ClientError:
        raise Unavailable(
            f"the worker hosting model '{route.name}' dropped the request; retry shortly",
            retry_after=models.retry_after,
        ) from None
    except TimeoutError:
        raise DeadlineExceeded(
            f"the worker hosting model '{route.name}' did not answer within "
            f"{models.settings.upstream_timeout_s:g} s"
        ) from None
    finally:
        if models.metrics is not None:
            models.metrics.upstream_latency.labels(route.name).observe(time.perf_counter() - start)
    return status, back, data
