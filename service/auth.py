"""API keys (`MEDSERVE_API_KEYS`) and the optional per-key rate limit.

A key arrives as `Authorization: Bearer <key>` or `X-API-Key: <key>` and maps to a tenant.
The rate limit is a fixed one-minute window per key; counters live in Redis when a Redis URL
is set (shared by every gateway replica), else in this process's memory.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from typing import Any

from redis import exceptions as redis_errors

from core.constants import RATE_LIMIT_PREFIX
from core.errors import RateLimited, Unauthorized
from core.settings import GatewaySettings

log = logging.getLogger("medserve.auth")

# Paths anyone may call: probes, metrics, the API documentation and the console's own files
# (the console's API calls carry the key typed into it).
OPEN_PATHS = frozenset(
    {"/livez", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json",
     "/v2/health/live", "/v2/health/ready", "/favicon.ico", "/ui"}
)  # fmt: skip
OPEN_PREFIXES = ("/docs/static/", "/ui/")


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def key_fingerprint(key: str) -> str:
    """A short, non-reversible name for a key (for counters and logs)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class Authenticator:
    """Checks the key on a request and returns its tenant."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._tenants = [(key.encode(), tenant) for key, tenant in settings.tenants_by_key.items()]
        self.enabled = bool(self._tenants)

    @staticmethod
    def key_from_headers(headers: dict[bytes, bytes]) -> str | None:
        auth = headers.get(b"authorization")
        if auth:
            scheme, _, value = auth.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                return value.strip()
        api_key = headers.get(b"x-api-key")
        if api_key:
            return api_key.decode("latin-1").strip() or None
        return None

    def tenant_for(self, key: str | None) -> str:
        """The key's tenant, or `Unauthorized` with a message saying how to authenticate."""
        if key is None:
            raise Unauthorized(
                "this route needs an API key: send 'Authorization: Bearer <key>' "
                "or 'X-API-Key: <key>'"
            )
        raw = key.encode()
        found = None
        for candidate, tenant in self._tenants:  # compare every key, in constant time each
            if hmac.compare_digest(candidate, raw):
                found = tenant
        if found is None:
            raise Unauthorized("the API key is not valid; check MEDSERVE_API_KEYS on the server")
        return found


class RateLimiter:
    """Fixed one-minute windows per key: Redis INCR+EXPIRE, or an in-memory dict."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.limit = settings.rate_limit_per_minute
        self.enabled = self.limit > 0
        self._redis: Any = None
        self._memory: dict[tuple[str, int], int] = {}
        self._degraded = False
        if self.enabled and settings.redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(settings.redis_url)

    async def check(self, key: str, tenant: str) -> None:
        if not self.enabled:
            return
        now = time.time()
        window = int(now // 60)
        fingerprint = key_fingerprint(key)
        if self._redis is not None:
            name = f"{RATE_LIMIT_PREFIX}{fingerprint}:{window}"
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.incr(name)
                    pipe.expire(name, 120)
                    count, _ = await pipe.execute()
            except (OSError, redis_errors.RedisError):
                # Redis away (restarting): count in memory until it is back, never fail a call
                count = self._count_in_memory(fingerprint, window)
                if not self._degraded:
                    log.warning("rate limit counters fall back to memory: Redis does not answer")
                self._degraded = True
            else:
                self._degraded = False
        else:
            count = self._count_in_memory(fingerprint, window)
        if count > self.limit:
            retry_after = max(1, int(60 - now % 60) + 1)
            raise RateLimited(
                f"rate limit of {self.limit} requests per minute reached for this API key; "
                f"retry after {retry_after} s",
                retry_after=retry_after,
            )

    def _count_in_memory(self, fingerprint: str, window: int) -> int:
        slot = (fingerprint, window)
        count = self._memory.get(slot, 0) + 1
        self._memory[slot] = count
        if len(self._memory) > 10_000:
            self._memory = {k: v for k, v in self._memory.items() if k[1] >= window}
        return count

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
