"""What one worker process holds: its adapters, their batchers, load states and thread pool.

Models load in a background thread at start-up, so the server answers `/v2/health/live` at
once and `/v2/health/ready` flips to 200 when every hosted model is loaded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from core.errors import MedserveError, ModelNotFound, ModelNotReady, WeightsUnavailable
from core.heap import settle_heap
from core.settings import WorkerSettings
from model_store.store import ModelStore, ResolvedModel
from workers.runtime.adapter import ModelAdapter
from workers.runtime.batcher import BatchConfig, Batcher
from workers.runtime.families import load_manifests
from workers.runtime.resources import check_resources

log = logging.getLogger("medserve.worker")

Resolver = Callable[[str], ResolvedModel]


def store_resolver(settings: WorkerSettings, adapters: dict[str, ModelAdapter]) -> Resolver:
    """Resolve from the model store; build tiny random weights when allowed and none exist."""
    manifests = {**load_manifests(), **{a.name: a.manifest for a in adapters.values()}}
    store = ModelStore(settings.model_root, manifests)

    def resolve(name: str) -> ResolvedModel:
        try:
            return store.resolve(name)
        except WeightsUnavailable:
            if not settings.allow_random_weights:
                raise
            from workers.runtime.registry import build_tiny

            log.warning(
                "no weights in the store; building tiny random weights", extra={"model": name}
            )
            return build_tiny(store, name)

    return resolve


def set_torch_threads(threads: int | None, adapters: dict[str, ModelAdapter]) -> None:
    """Apply `MEDSERVE_TORCH_THREADS` (intra-op threads) when a hosted model uses torch."""
    if not threads or all(a.manifest.family == "builtin" for a in adapters.values()):
        return
    import torch

    torch.set_num_threads(threads)


def resolve_device(setting: str, adapters: dict[str, ModelAdapter]) -> str:
    """`auto` -> cuda when torch sees a GPU, else cpu (torch is not imported for builtin-only)."""
    if setting != "auto":
        return setting
    if all(a.manifest.family == "builtin" for a in adapters.values()):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def batch_config(settings: WorkerSettings, adapter: ModelAdapter) -> BatchConfig:
    """The manifest's `batching`, with the MEDSERVE_MAX_* settings overriding it."""
    b = adapter.manifest.batching
    return BatchConfig(
        max_batch_size=settings.max_batch_size or b.max_batch_size,
        max_queue_delay_ms=(
            settings.max_queue_delay_ms
            if settings.max_queue_delay_ms is not None
            else b.max_queue_delay_ms
        ),
        max_queue_size=settings.max_queue_size or b.max_queue_size,
    )


class WorkerState:
    """Adapters, batchers and load states of one worker process."""

    def __init__(
        self, settings: WorkerSettings, adapters: dict[str, ModelAdapter], resolve: Resolver | None
    ) -> None:
        self.settings = settings
        self.adapters = adapters
        self.resolve = resolve
        self.states: dict[str, str] = {name: "LOADING" for name in adapters}
        self.reasons: dict[str, str] = {}
        self.batchers: dict[str, Batcher] = {}
        self.draining = False
        self.stages: dict[tuple[str, str], Any] = {}  # (model, stage) -> infer.Stage
        self.pool = ThreadPoolExecutor(
            min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="preprocess"
        )
        self._started = False
        self._loader: threading.Thread | None = None
        self.device = "cpu"
        self._resolve: Resolver = resolve or store_resolver(settings, adapters)

    # --- lifecycle --------------------------------------------------------------------------

    def ensure_started(self) -> None:
        """Start batchers and loading once, inside the serving event loop."""
        if self._started:
            return
        self._started = True
        for name, adapter in self.adapters.items():
            batcher = Batcher(adapter, batch_config(self.settings, adapter))
            batcher.start()
            self.batchers[name] = batcher
        self._loader = threading.Thread(target=self._load_all, name="model-loader", daemon=True)
        self._loader.start()

    def _load_all(self) -> None:
        set_torch_threads(self.settings.torch_threads, self.adapters)
        self.device = resolve_device(self.settings.device, self.adapters)
        self._resolve = self.resolve or store_resolver(self.settings, self.adapters)
        for name in self.adapters:
            self.load(name)
        settle_heap()  # the loaded models are long-lived: keep them out of collections

    def load(self, name: str) -> bool:
        """(Re)load one model (start-up, or the repository extension's load); True when READY."""
        adapter = self.adapters[name]
        if adapter.resolved is not None:
            self.states[name] = "READY"
            self.reasons.pop(name, None)
            return True
        self.states[name] = "LOADING"
        try:
            resolved = self._resolve(name)
            check_resources(adapter.manifest, self.device, resolved.weights)
            adapter.load(resolved, self.device)
        except MedserveError as exc:
            self.states[name], self.reasons[name] = "UNAVAILABLE", exc.message
            log.error("model failed to load", extra={"model": name, "reason": exc.message})
            return False
        except Exception as exc:
            reason = f"loading failed ({type(exc).__name__}); see the worker log"
            self.states[name], self.reasons[name] = "UNAVAILABLE", reason
            log.error("model failed to load", extra={"model": name,
                                                     "error_type": type(exc).__name__})  # fmt: skip
            return False
        self.states[name] = "READY"
        self.reasons.pop(name, None)
        log.info(
            "model ready", extra={"model": name, "device": self.device, **adapter.provenance()}
        )
        return True

    def unload(self, name: str) -> None:
        """Free a model's weights (the repository extension's unload); requests get 503."""
        self.states[name], self.reasons[name] = "UNAVAILABLE", "unloaded"
        self.adapters[name].unload()
        log.info("model unloaded", extra={"model": name})

    def wait_loaded(self, timeout: float | None = None) -> None:
        if self._loader is not None:
            self._loader.join(timeout)

    async def shutdown(self) -> None:
        """Stop accepting, finish queued work (up to drain_timeout_s), stop the batchers."""
        self.draining = True
        timeout = self.settings.drain_timeout_s
        results = await asyncio.gather(*(b.drain(timeout) for b in self.batchers.values()))
        if not all(results):
            log.warning("drain timed out; dropping queued work")
        for batcher in self.batchers.values():
            await batcher.close()
        self.pool.shutdown(wait=False)

    # --- queries ------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return not self.draining and all(s == "READY" for s in self.states.values())

    def adapter(self, name: str, version: str | None = None) -> ModelAdapter:
        adapter = self.adapters.get(name)
        if adapter is None:
            hosted = ", ".join(sorted(self.adapters)) or "none"
            raise ModelNotFound(f"model '{name}' is not served here; models: {hosted}")
        if version is not None and version != adapter.manifest.version:
            raise ModelNotFound(
                f"model '{name}' has no version '{version}'; versions: [{adapter.manifest.version}]"
            )
        return adapter

    def batcher(self, name: str, version: str | None = None) -> Batcher:
        self.adapter(name, version)
        state = self.states[name]
        if state != "READY":
            detail = self.reasons.get(name, "it is still loading")
            raise ModelNotReady(
                f"model '{name}' is not ready ({state.lower()}: {detail}); "
                f"retry when /v2/models/{name}/ready answers 200",
                retry_after=1,
            )
        return self.batchers[name]

    def index(self) -> list[dict[str, Any]]:
        out = []
        for name, adapter in self.adapters.items():
            entry = {"name": name, "version": adapter.manifest.version, "state": self.states[name]}
            if name in self.reasons:
                entry["reason"] = self.reasons[name]
            out.append(entry)
        return out

    def stats(self, name: str | None = None, version: str | None = None) -> list[dict[str, Any]]:
        names = [self.adapter(name, version).name] if name else list(self.adapters)
        out = []
        for n in names:
            if n in self.batchers:
                snap = self.batchers[n].snapshot()
                snap["stages"] = {
                    stage: timer.to_json() for (model, stage), timer in self.stages.items()
                    if model == n
                }  # fmt: skip
                out.append(snap)
        return out

    def metrics_snapshot(self) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "state": self.states[name],
                "stats": self.batchers[name].snapshot() if name in self.batchers else None,
            }
            for name in self.adapters
        ]
