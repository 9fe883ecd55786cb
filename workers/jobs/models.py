"""How a job runner reaches models: the same route table as the gateway, blocking OIP calls.

A model's workers come from `settings.routes` (model -> URL or URLs) or, failing that, from
the model index of each of `settings.worker_urls` (`dns+http://` entries resolved to every
address, as the gateway does; re-read every `REDISCOVER_S`). A model may have several replicas:
each call goes to the one with fewer calls outstanding of two (power of two choices), and a
campaign keeps `concurrency` calls in flight per replica (`replicas(model)`), so N workers
generate about N times as fast. Calls go at `priority="batch"`, so interactive traffic on the
same worker is served first. A replica that refuses or drops a call is skipped for a while and
the call goes to another; a busy or restarting model is retried with backoff instead of
failing a long job.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import numpy as np

from core.endpoints import Resolver, expand, resolve_addresses
from core.errors import MedserveError, ModelNotFound, ModelNotReady, Overloaded, Unavailable
from core.settings import JobSettings
from workers.runtime.client import SyncOIPClient
from workers.runtime.oip import InferResponse

RETRYABLE = (Overloaded, Unavailable, ModelNotReady)
ELSEWHERE = (Unavailable, ModelNotReady)  # the replica did no work: another one may
SKIP_S = 2.0  # how long a replica that refused or dropped a call is skipped
REDISCOVER_S = 30.0  # discovered routes are re-read this often (pods come and go)


class ModelClients:
    """Blocking OIP clients by model name, shared by the jobs of one runner process."""

    def __init__(
        self, settings: JobSettings, retry_for_s: float = 300.0,
        resolve: Resolver = resolve_addresses,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.retry_for_s = retry_for_s
        self.resolve = resolve
        self._clients: dict[str, SyncOIPClient] = {}
        self._static = {m: [u.rstrip("/") for u in urls] for m, urls in settings.routes.items()}
        self._found: dict[str, list[str]] = {}
        self._found_at = 0.0
        self._inflight: dict[str, int] = {}
        self._skip_until: dict[str, float] = {}
        self._lock = threading.RLock()
        self.calls = 0

    def urls_for(self, model: str) -> list[str]:
        """Every worker URL serving `model` (ModelNotFound when none does)."""
        with self._lock:
            urls = self._static.get(model)
            if urls is None:
                stale = time.monotonic() - self._found_at > REDISCOVER_S
                if model not in self._found or stale:
                    self._discover()
                urls = self._found.get(model)
        if not urls:
            raise ModelNotFound(
                f"no model worker serves {model!r}; "
                "add it to MEDSERVE_ROUTES or MEDSERVE_WORKER_URLS"
            )
        return urls

    def replicas(self, model: str) -> int:
        """How many workers serve `model`: a campaign keeps `concurrency` calls on each."""
        return len(self.urls_for(model))

    def url_for(self, model: str) -> str:
        """The replica for the next call (without taking it: `infer` does)."""
        return self._choose(model, set())

    def _discover(self) -> None:
        found: dict[str, list[str]] = {}
        for entry in self.settings.worker_urls:
            for base in expand(entry, self.resolve):
                client = self._client_at(base)
                try:
                    entries = client.index() or []
                except MedserveError:
                    continue
                for item in entries:
                    found.setdefault(str(item["name"]), []).append(client.base_url)
        self._found, self._found_at = found, time.monotonic()

    def _client_at(self, url: str) -> SyncOIPClient:
        if url not in self._clients:
            self._clients[url] = SyncOIPClient(url)
        return self._clients[url]

    def _choose(self, model: str, tried: set[str]) -> str:
        urls = self.urls_for(model)
        now = time.monotonic()
        with self._lock:
            fresh = [u for u in urls if u not in tried and self._skip_until.get(u, 0.0) <= now]
            pool = fresh or [u for u in urls if u not in tried] or urls
            if len(pool) > 2:
                pool = random.sample(pool, 2)
            random.shuffle(pool)  # ties go either way
            return min(pool, key=lambda u: self._inflight.get(u, 0))

    def client(self, model: str) -> SyncOIPClient:
        url = self.url_for(model)
        with self._lock:
            return self._client_at(url)

    def metadata(self, model: str) -> dict[str, Any]:
        return self.client(model).metadata(model)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    def _call(self, model: str, tried: set[str], call: Any) -> InferResponse:
        url = self._choose(model, tried)
        with self._lock:
            client = self._client_at(url)
            self._inflight[url] = self._inflight.get(url, 0) + 1
            self.calls += 1
        try:
            response: InferResponse = call(client)
            return response
        except ELSEWHERE:
            with self._lock:
                self._skip_until[url] = time.monotonic() + SKIP_S
            tried.add(url)
            raise
        finally:
            with self._lock:
                self._inflight[url] -= 1

    def infer(
        self,
        model: str,
        inputs: dict[str, np.ndarray],
        parameters: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        outputs: list[str] | None = None,
    ) -> InferResponse:
        """One batch-priority inference on a replica, handed to another replica when the first
        refuses or drops it, retried with backoff while every replica is busy or restarting."""
        deadline = time.monotonic() + self.retry_for_s
        delay = 0.2
        tried: set[str] = set()

        def call(client: SyncOIPClient) -> InferResponse:
            return client.infer(model, inputs, parameters, priority="batch",
                                timeout_s=timeout_s, outputs=outputs)  # fmt: skip

        while True:
            try:
                return self._call(model, tried, call)
            except RETRYABLE as exc:
                if isinstance(exc, ELSEWHERE) and len(tried) < self.replicas(model):
                    continue  # another replica has not been tried yet: at once
                tried.clear()
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(exc.retry_after or delay)
                delay = min(delay * 2, 5.0)
