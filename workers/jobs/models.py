"""How a job runner reaches models: the same route table as the gateway, blocking OIP calls.

A model's worker comes from `settings.routes` (model -> URL) or, failing that, from the model
index of each of `settings.worker_urls`. Calls go at `priority="batch"`, so interactive
traffic on the same worker is served first. A busy or restarting worker is retried with
backoff instead of failing a long job.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from core.errors import MedserveError, ModelNotFound, ModelNotReady, Overloaded, Unavailable
from core.settings import JobSettings
from workers.runtime.client import SyncOIPClient
from workers.runtime.oip import InferResponse

RETRYABLE = (Overloaded, Unavailable, ModelNotReady)


class ModelClients:
    """Blocking OIP clients by model name, shared by the jobs of one runner process."""

    def __init__(self, settings: JobSettings, retry_for_s: float = 300.0) -> None:
        self.settings = settings
        self.retry_for_s = retry_for_s
        self._clients: dict[str, SyncOIPClient] = {}
        self._routes: dict[str, str] = dict(settings.routes)
        self._lock = threading.RLock()
        self.calls = 0

    def url_for(self, model: str) -> str:
        with self._lock:
            if model not in self._routes:
                self._discover()
            url = self._routes.get(model)
        if url is None:
            raise ModelNotFound(
                f"no model worker serves {model!r}; "
                "add it to MEDSERVE_ROUTES or MEDSERVE_WORKER_URLS"
            )
        return url

    def _discover(self) -> None:
        for base in self.settings.worker_urls:
            client = self._client_at(base.rstrip("/"))
            try:
                entries = client.index() or []
            except MedserveError:
                continue
            for entry in entries:
                self._routes.setdefault(str(entry["name"]), client.base_url)

    def _client_at(self, url: str) -> SyncOIPClient:
        if url not in self._clients:
            self._clients[url] = SyncOIPClient(url)
        return self._clients[url]

    def client(self, model: str) -> SyncOIPClient:
        url = self.url_for(model)
        with self._lock:
            return self._client_at(url)

    def metadata(self, model: str) -> dict[str, Any]:
        return self.client(model).metadata(model)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    def infer(
        self,
        model: str,
        inputs: dict[str, np.ndarray],
        parameters: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        outputs: list[str] | None = None,
    ) -> InferResponse:
        """One batch-priority inference, retried while the worker is busy or restarting."""
        deadline = time.monotonic() + self.retry_for_s
        delay = 0.2
        while True:
            try:
                self.calls += 1
                response: InferResponse = self.client(model).infer(
                    model,
                    inputs,
                    parameters,
                    priority="batch",
                    timeout_s=timeout_s,
                    outputs=outputs,
                )
                return response
            except RETRYABLE as exc:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(exc.retry_after or delay)
                delay = min(delay * 2, 5.0)
