"""What `/readyz` answers: every engine the gateway routes to, each with its own state.

The model workers' state comes from discovery; the vLLM engine (when configured) and Redis
(when jobs are configured) are probed on the same interval. The gateway is ready only when
every one of them is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from core.errors import MedserveError
from core.settings import GatewaySettings
from service.discovery import Discovery
from workers.runtime.llm_client import LLMClient

log = logging.getLogger("medserve.readiness")


@dataclass
class DependencyState:
    ready: bool = False
    reason: str | None = "not checked yet"
    checked_at: float = 0.0


class Readiness:
    """Probes of the non-worker dependencies, and the overall verdict."""

    def __init__(
        self, settings: GatewaySettings, discovery: Discovery, llm: LLMClient | None
    ) -> None:
        self.settings = settings
        self.discovery = discovery
        self.llm = llm
        self.dependencies: dict[str, DependencyState] = {}
        if llm is not None:
            self.dependencies["vllm"] = DependencyState()
        if settings.redis_url:
            self.dependencies["redis"] = DependencyState()
        self._redis: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.check_once()
        self._task = asyncio.create_task(self._loop(), name="medserve-readiness")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._redis is not None:
            await self._redis.aclose()

    def ready(self) -> bool:
        return self.discovery.all_ready() and all(d.ready for d in self.dependencies.values())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.discovery.interval_s)
            try:
                await self.check_once()
            except Exception as exc:  # never let the prober die
                log.error("readiness check failed", exc_info=exc)

    async def check_once(self) -> None:
        checks = []
        if "vllm" in self.dependencies:
            checks.append(self._check("vllm", self._vllm()))
        if "redis" in self.dependencies:
            checks.append(self._check("redis", self._ping_redis()))
        await asyncio.gather(*checks)

    async def _check(self, name: str, probe: Any) -> None:
        state = self.dependencies[name]
        try:
            reason = await asyncio.wait_for(probe, timeout=max(2.0, self.discovery.probe_timeout_s))
        except (TimeoutError, MedserveError, OSError, ConnectionError) as exc:
            reason = f"{name} does not answer ({type(exc).__name__})"
        except Exception as exc:  # redis raises its own hierarchy
            reason = f"{name} does not answer ({type(exc).__name__})"
        if name == "vllm":
            for route in self.discovery.router.routes.values():
                if route.engine == "vllm":
                    state_name = "READY" if reason is None else "UNAVAILABLE"
                    self.discovery.router.set_state(route, reason is None, state_name, reason)
        if reason != state.reason:
            log.log(logging.INFO if reason is None else logging.WARNING, "dependency state",
                    extra={"dependency": name, "reason": reason})  # fmt: skip
        state.ready, state.reason, state.checked_at = reason is None, reason, time.time()

    async def _vllm(self) -> str | None:
        assert self.llm is not None
        served = self.settings.vllm_model
        models = await self.llm.models()
        if served and served not in {m.get("id") for m in models}:
            return f"vLLM serves no model named {served!r}"
        return None

    async def _ping_redis(self) -> str | None:
        if self._redis is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(str(self.settings.redis_url), socket_timeout=2.0)
        await self._redis.ping()
        return None
