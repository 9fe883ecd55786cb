"""Keeps the route table's readiness current.

Every `health_interval_s` it asks each worker in `MEDSERVE_WORKER_URLS` for its model index
(`POST /v2/repository/index`) and adds or updates the models found, and asks each worker of a
static route for its index too (or, without the repository extension, each model's
`/ready`). A worker that stops answering makes its models not ready (so `/readyz` turns
503) until it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from core.errors import DeadlineExceeded, MedserveError
from service.model_router import ModelRoute, ModelRouter, base_url

log = logging.getLogger("medserve.routing")

TIMEOUTS_BEFORE_DOWN = 3  # a busy worker may answer a probe late; a dead one refuses at once


class Discovery:
    """The background poller of one gateway."""

    def __init__(self, router: ModelRouter) -> None:
        self.router = router
        self.interval_s = router.settings.health_interval_s
        self.probe_timeout_s = max(2.0, 2 * self.interval_s)
        self.urls = [base_url(u) for u in router.settings.worker_urls]
        self.discovered_once: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.poll_once()
        self._task = asyncio.create_task(self._poll_forever(), name="medserve-discovery")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def all_ready(self) -> bool:
        """Every routed model ready, and every worker URL discovered at least once."""
        routes = self.router.routes
        if not routes or set(self.urls) - self.discovered_once:
            return False
        return all(route.ready for route in routes.values())

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.poll_once()
            except Exception as exc:  # never let the poller die
                log.error("health poll failed", exc_info=exc)

    async def poll_once(self) -> None:
        static: dict[str, list[ModelRoute]] = {}
        for route in self.router.routes.values():
            if not route.discovered and route.engine == "worker":
                static.setdefault(route.url, []).append(route)
        probes = [self._discover(url) for url in self.urls]
        probes += [self._probe_worker(url, routes) for url, routes in static.items()]
        await asyncio.gather(*probes)

    async def _index(self, url: str) -> dict[str, dict[str, Any]] | None:
        entries = await self.router.client(url).index(timeout_s=self.probe_timeout_s)
        return None if entries is None else {e["name"]: e for e in entries}

    async def _probe_worker(self, url: str, routes: list[ModelRoute]) -> None:
        """Static routes: one index call per worker (states and reasons), else per-model probes."""
        try:
            index = await self._index(url)
        except MedserveError as exc:
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
        except MedserveError as exc:
            self._fail_discovered(url, exc)
            return
        if index is None:
            self._fail_discovered(url, None)
            return
        self.discovered_once.add(url)
        routes = self.router.routes
        for name, entry in index.items():
            route = routes.get(name)
            if route is None:
                route = routes[name] = ModelRoute(name, url, discovered=True)
            elif not route.discovered:
                continue  # a static route wins over discovery
            route.url = url
            await self._apply(route, entry)

    def _fail_discovered(self, url: str, exc: MedserveError | None) -> None:
        for route in self.router.routes.values():
            if route.discovered and route.url == url:
                self._fail(route, exc)

    async def _apply(self, route: ModelRoute, entry: dict[str, Any]) -> None:
        state = str(entry.get("state") or ("READY" if entry.get("ready") else "UNAVAILABLE"))
        await self._set(route, state.upper() == "READY", state.upper(), entry.get("reason"))

    async def _probe(self, route: ModelRoute) -> None:
        client = self.router.client(route.url)
        ready = await client.ready(route.name, timeout_s=self.probe_timeout_s)
        await self._set(route, ready, "READY" if ready else "LOADING", None)

    def _fail(self, route: ModelRoute, exc: MedserveError | None) -> None:
        if isinstance(exc, DeadlineExceeded):
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
        self.router.set_state(route, False, "UNAVAILABLE", reason)

    async def _set(self, route: ModelRoute, ready: bool, state: str, reason: str | None) -> None:
        route.timeouts = 0
        became_ready = ready and not route.ready
        self.router.set_state(route, ready, state, reason or None)
        if became_ready:
            log.info("model ready", extra={"model": route.name})
            try:
                route.metadata = await self.router.client(route.url).metadata(
                    route.name, timeout_s=self.probe_timeout_s
                )
            except MedserveError:
                route.metadata = None
