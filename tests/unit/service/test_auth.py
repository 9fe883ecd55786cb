"""API keys to tenants and the per-key rate limit (in memory here; Redis in integration)."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import RateLimited, Unauthorized
from core.settings import GatewaySettings
from service.auth import Authenticator, RateLimiter, is_open, key_fingerprint


def test_keys_map_to_tenants_from_either_header() -> None:
    auth = Authenticator(GatewaySettings(api_keys="k1:hospital-a,k2"))
    assert auth.enabled
    bearer = auth.key_from_headers({b"authorization": b"Bearer k1"})
    assert bearer == "k1" and auth.tenant_for(bearer) == "hospital-a"
    assert auth.tenant_for(auth.key_from_headers({b"x-api-key": b" k2 "})) == "default"
    with pytest.raises(Unauthorized, match="Authorization: Bearer"):
        auth.tenant_for(auth.key_from_headers({}))
    with pytest.raises(Unauthorized, match="not valid"):
        auth.tenant_for("k3")
    assert auth.key_from_headers({b"authorization": b"Basic abc"}) is None


def test_no_keys_means_auth_off_and_probes_stay_open() -> None:
    assert not Authenticator(GatewaySettings()).enabled
    assert is_open("/readyz") and is_open("/docs/static/swagger-ui.css")
    assert not is_open("/v1/models")
    assert key_fingerprint("secret") != "secret" and len(key_fingerprint("secret")) == 16


def test_rate_limit_counts_per_key_and_says_when_to_retry() -> None:
    limiter = RateLimiter(GatewaySettings(rate_limit_per_minute=2))

    async def main() -> None:
        await limiter.check("k", "t")
        await limiter.check("k", "t")
        await limiter.check("other", "t")  # another key has its own window
        with pytest.raises(RateLimited) as caught:
            await limiter.check("k", "t")
        assert caught.value.retry_after is not None and 1 <= caught.value.retry_after <= 61

    asyncio.run(main())
