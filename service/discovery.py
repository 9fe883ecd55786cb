"""Keeps the route table's replicas and their readiness current.

Every `health_interval_s` it asks each worker in `MEDSERVE_WORKER_URLS` for its model index
(`POST /v2/repository/index`) and adds or updates a replica per model found, and asks each
worker of a static route for its index too (or, without the repository extension, each model's
`/ready`). A `dns+http://host:port` entry is resolved on every poll: each address is a worker
(a headless Service's pods), new ones are added and replicas whose address is gone are dropped.
A worker that stops answering makes its replicas not ready (the model stays ready while another
replica is) until it answers again: that is how an ejected replica is probed back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from core.endpoints import Resolver, expand, is_dns, resolve_addresses
from core.errors import DeadlineExceeded, MedserveError
from service.model_router import ModelRoute, ModelRouter, base_url
from service.replicas import Replica

log = logging.getLogger("medserve.routing")

TIMEOUTS_BEFORE_DOWN = 3  # a busy worker may answer a probe late; a dead one refuses at once


class Discovery:
    """The background poller of one gateway."""

    def __init__(self, router: ModelRouter, resolve: Resolver = resolve_addresses) -> None:
        self.router = router
        self.resolve = resolve
        self.interval_s = router.settings.health_interval_s
        self.probe_timeout_s = max(2.0, 2 * self.interval_s)
        self.entries = [base_url(u) for u in router.settings.worker_urls]
        self.resolved: dict[str, list[str]] = {e: [] if is_dns(e) else [e] for e in self.entries}
        self.discovered_once: set[str] = set()  # entries with at least one worker indexed
        self._task: asyncio.Task[None] | None = None

    @property
    def urls(self) -> list[str]:
        """Every worker URL discovery polls now (DNS entries as last resolved)."""
        return sorted({u for urls in self.resolved.values() for u in urls})

    async def start(self) -> None:
        await self.poll_once()
        self._task = asyncio.create_task(self._poll_forever(), name="medserve-discovery")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def all_ready(self) -> bool:
        """Every routed model ready, and every worker entry discovered at least once."""
        routes = self.router.routes
        if not routes or set(self.entries) - self.discovered_once:
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
        await self._resolve_entries()
        static: dict[str, list[tuple[ModelRoute, Replica]]] = {}
        for route in self.router.routes.values():
            if route.engine != "worker":
                continue
            for replica in route.replicas:
                if not replica.discovered:
                    static.setdefault(replica.url, []).append((route, replica))
        probes = [
            self._discover(entry, url) for entry, urls in self.resolved.items() for url in urls
        ]
        probes += [self._probe_worker(url, pairs) for url, pairs in static.items()]
        await asyncio.gather(*probes)
        await self._prune()

    async def _resolve_entries(self) -> None:
        """Re-resolve `dns+` entries; an empty answer keeps the last one (a DNS blip, or every
        pod gone: their probes then fail and mark them not ready)."""
        for entry in self.entries:
            if not is_dns(entry):
                continue
            urls = await asyncio.to_thread(expand, entry, self.resolve)
            if urls:
                self.resolved[entry] = urls

    async def _prune(self) -> None:
        """Drop discovered replicas whose worker left DNS, and routes left with none."""
        live = set(self.urls)
        routes = self.router.routes
        gone: set[str] = set()
        for name in list(routes):
            route = routes[name]
            kept = [r for r in route.replicas if not r.discovered or r.url in live]
            gone.update(r.url for r in route.replicas if r not in kept)
            if len(kept) != len(route.replicas):
                route.replicas = kept
                if not kept:
                    del routes[name]
        for url in gone:
            log.info("worker left", extra={"replica": url})
            await self.router.forget(url)

    async def _index(self, url: str) -> dict[str, dict[str, Any]] | None:
        entries = await self.router.client(url).index(timeout_s=self.probe_timeout_s)
        return None if entries is None else {e["name"]: e for e in entries}

    async def _probe_worker(self, url: str, pairs: list[tuple[ModelRoute, Replica]]) -> None:
        """Static replicas: one index call per worker (states and reasons), else per-model
        probes."""
        try:
            index = await self._index(url)
        except MedserveError as exc:
            for route, replica in pairs:
                self._fail(route, replica, exc)
            return
        if index is None:
            await asyncio.gather(*(self._probe(route, replica) for route, replica in pairs))
            return
        for route, replica in pairs:
            entry = index.get(route.name)
            if entry is None:
                reason = "its worker does not host this model"
                await self._set(route, replica, False, "UNAVAILABLE", reason)
            else:
                await self._apply(route, replica, entry)

    async def _discover(self, entry: str, url: str) -> None:
        try:
            index = await self._index(url)
        except MedserveError as exc:
            self._fail_discovered(url, exc)
            return
        if index is None:
            self._fail_discovered(url, None)
            return
        self.discovered_once.add(entry)
        routes = self.router.routes
        for name, model in index.items():
            route = routes.get(name)
            if route is None:
                route = routes[name] = ModelRoute(name)
            elif any(not r.discovered for r in route.replicas):
                continue  # a static route wins over discovery
            replica = route.replica(url)
            if replica is None:
                replica = Replica(url, discovered=True)
                route.replicas.append(replica)
            await self._apply(route, replica, model)
        for route in routes.values():
            replica = route.replica(url)
            if replica is not None and replica.discovered and route.name not in index:
                reason = "its worker does not host this model"
                await self._set(route, replica, False, "UNAVAILABLE", reason)

    def _fail_discovered(self, url: str, exc: MedserveError | None) -> None:
        for route in self.router.routes.values():
            replica = route.replica(url)
            if replica is not None and replica.discovered:
                self._fail(route, replica, exc)

    async def _apply(self, route: ModelRoute, replica: Replica, entry: dict[str, Any]) -> None:
        state = str(entry.get("state") or ("READY" if entry.get("ready") else "UNAVAILABLE"))
        ready = state.upper() == "READY"
        await self._set(route, replica, ready, state.upper(), entry.get("reason"))

    async def _probe(self, route: ModelRoute, replica: Replica) -> None:
        client = self.router.client(replica.url)
        ready = await client.ready(route.name, timeout_s=self.probe_timeout_s)
        await self._set(route, replica, ready, "READY" if ready else "LOADING", None)

    def _fail(self, route: ModelRoute, replica: Replica, exc: MedserveError | None) -> None:
        if isinstance(exc, DeadlineExceeded):
            replica.timeouts += 1
            if replica.timeouts < TIMEOUTS_BEFORE_DOWN:
                return
            reason = "worker does not answer its health check"
        elif exc is None:
            reason = "worker answered its index with an error"
        else:
            reason = "worker unreachable"
        if replica.ready or replica.reason != reason:
            log.warning("replica not ready", extra={"model": route.name,
                        "replica": replica.url, "reason": reason})  # fmt: skip
        self.router.set_replica(route, replica, False, "UNAVAILABLE", reason)

    async def _set(
        self, route: ModelRoute, replica: Replica, ready: bool, state: str, reason: str | None
    ) -> None:
        replica.timeouts = 0
        was_ready, route_was_ready = replica.ready, route.ready
        self.router.set_replica(route, replica, ready, state, reason or None)
        if ready and not was_ready:
            log.info("replica ready", extra={"model": route.name, "replica": replica.url})
        if ready and (not route_was_ready or route.metadata is None):
            try:
                route.metadata = await self.router.client(replica.url).metadata(
                    route.name, timeout_s=self.probe_timeout_s
                )
            except MedserveError:
                route.metadata = None
