"""The one client for OpenAI-compatible LLM servers (vLLM, or any endpoint a job is given).

Used by the gateway's OpenAI routes, the MedVAL engine on vLLM, and benchmark jobs. One
pooled aiohttp session; the `/v1` suffix, the Bearer header, timeouts and transport errors are
handled here once, as `core.errors` types.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.errors import DeadlineExceeded, Unavailable, Unreachable, UpstreamError


class LLMClient:
    """`base_url` with or without its `/v1` suffix; `api_key` sent as a Bearer token."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout_s: float = 600.0):
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout_s = timeout_s
        self._session: Any = None

    def _http(self) -> Any:
        if self._session is None or self._session.closed:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=4.0),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            )
        return self._session

    async def open(
        self, method: str, path: str, body: Any = None, timeout_s: float | None = None
    ) -> Any:
        """The raw response (the caller reads or streams it, then releases it)."""
        import aiohttp

        kwargs: dict[str, Any] = {"headers": self.headers}
        if body is not None:
            kwargs["data"] = orjson.dumps(body)
        if timeout_s is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout_s)
        try:
            return await self._http().request(method, self.base_url + path, **kwargs)
        except TimeoutError:
            raise DeadlineExceeded("the LLM engine did not answer in time") from None
        except aiohttp.ClientConnectorError:
            raise Unreachable(
                f"the LLM engine at {self.base_url} cannot be reached; check its URL "
                "(MEDSERVE_VLLM_BASE_URL) and that it is running",
                retry_after=5,
            ) from None
        except aiohttp.ClientError:
            raise Unavailable("the LLM engine dropped the request; retry", retry_after=1) from None

    async def call(
        self, method: str, path: str, body: Any = None, timeout_s: float | None = None
    ) -> tuple[int, bytes]:
        """(status, body) of one request."""
        import aiohttp

        response = await self.open(method, path, body, timeout_s)
        try:
            return response.status, await response.read()
        except TimeoutError:
            raise DeadlineExceeded("the LLM engine did not answer in time") from None
        except aiohttp.ClientError:
            raise Unavailable("the LLM engine dropped the request; retry", retry_after=1) from None
        finally:
            response.release()

    async def post_json(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """(status, parsed JSON or None) of a POST."""
        status, payload = await self.call("POST", path, body)
        try:
            return status, orjson.loads(payload)
        except orjson.JSONDecodeError:
            if status == 200:
                raise UpstreamError("the LLM engine's answer is not JSON") from None
            return status, None

    async def models(self, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """The engine's `/v1/models` list (raises when it does not answer)."""
        status, payload = await self.call("GET", "/models", timeout_s=timeout_s)
        if status != 200:
            raise UpstreamError(f"the LLM engine answered /v1/models with HTTP {status}")
        data = orjson.loads(payload).get("data", [])
        return [m for m in data if isinstance(m, dict)]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
