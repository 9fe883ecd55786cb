"""OIP v2 clients for model workers (ours, Triton, any KServe v2 server).

`OIPClient` (asyncio, aiohttp: one pooled session, far cheaper per request than httpx under
concurrency) is what the gateway uses; `SyncOIPClient` (httpx) is for job runners. Both send
binary tensors and raise `core.errors` types rebuilt from the worker's status,
`{"error": msg}` body and `X-Medserve-Error-Code` header.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import orjson

from core.constants import ERROR_CODE_HEADER
from core.errors import DeadlineExceeded, MedserveError, Unavailable, from_status
from workers.runtime.oip import HEADER_LENGTH, InferResponse, decode_response, encode_request


def _infer_parts(
    model: str,
    inputs: dict[str, np.ndarray],
    parameters: dict[str, Any] | None,
    priority: str,
    timeout_s: float | None,
    request_id: str | None,
    outputs: list[str] | None,
    version: str | None,
) -> tuple[str, bytes, dict[str, str]]:
    body, header_length = encode_request(
        inputs, parameters=parameters, request_id=request_id, outputs=outputs
    )
    headers = {"X-Medserve-Priority": priority}
    if header_length is not None:
        headers[HEADER_LENGTH] = str(header_length)
    else:
        headers["Content-Type"] = "application/json"
    if timeout_s is not None:
        headers["X-Medserve-Timeout-S"] = repr(float(timeout_s))
    if request_id:
        headers["X-Request-ID"] = request_id
    path = f"/v2/models/{quote(model, safe='')}"
    if version:
        path += f"/versions/{quote(version, safe='')}"
    return path + "/infer", body, headers


def _error(status: int, headers: Any, body: bytes) -> MedserveError:
    try:
        doc = orjson.loads(body)
        message = doc["error"] if isinstance(doc, dict) and "error" in doc else None
    except (orjson.JSONDecodeError, TypeError):
        message = None
    if isinstance(message, dict):  # the gateway's envelope
        message = message.get("message")
    if not isinstance(message, str):
        message = f"the model server answered HTTP {status}"
    code = headers.get(ERROR_CODE_HEADER)
    error = from_status(status, message, code)
    retry = headers.get("Retry-After")
    if retry:
        try:
            error.retry_after = float(retry)
        except ValueError:
            pass
    return error


def _response(status: int, headers: Any, body: bytes) -> InferResponse:
    if status != 200:
        raise _error(status, headers, body)
    length = headers.get(HEADER_LENGTH)
    return decode_response(body, int(length) if length is not None else None)


class OIPClient:
    """Async OIP v2 client over one pooled aiohttp session (create it inside an event loop)."""

    def __init__(
        self, base_url: str, *, max_connections: int = 256, timeout_s: float = 600.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_connections = max_connections
        self.timeout_s = timeout_s
        self._session: Any = None

    def _http(self) -> Any:
        if self._session is None or self._session.closed:
            import aiohttp

            connector = aiohttp.TCPConnector(
                limit=self.max_connections, keepalive_timeout=30, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> tuple[int, Any, bytes]:
        import aiohttp

        kwargs: dict[str, Any] = {"data": body, "headers": headers}
        if timeout_s is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self._http().request(method, self.base_url + path, **kwargs) as resp:
                return resp.status, resp.headers, await resp.read()
        except TimeoutError:
            raise DeadlineExceeded(
                f"no answer from the model server within {timeout_s or self.timeout_s:.3g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise Unavailable(
                f"the model server at {self.base_url} cannot be reached ({type(exc).__name__})"
            ) from None

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
        version: str | None = None,
    ) -> InferResponse:
        path, body, headers = _infer_parts(
            model, inputs, parameters, priority, timeout_s, request_id, outputs, version
        )
        wait = timeout_s + 5.0 if timeout_s is not None else None
        status, resp_headers, data = await self._request("POST", path, body, headers, wait)
        return _response(status, resp_headers, data)

    async def infer_raw(
        self, path: str, body: bytes, headers: dict[str, str], timeout_s: float | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """Forward an already encoded request (the gateway's /v2 pass-through)."""
        status, resp_headers, data = await self._request("POST", path, body, headers, timeout_s)
        return status, dict(resp_headers), data

    async def get_raw(self, path: str) -> tuple[int, dict[str, str], bytes]:
        status, resp_headers, data = await self._request("GET", path)
        return status, dict(resp_headers), data

    async def live(self) -> bool:
        try:
            return (await self._request("GET", "/v2/health/live", timeout_s=5))[0] == 200
        except MedserveError:
            return False

    async def server_ready(self) -> bool:
        try:
            return (await self._request("GET", "/v2/health/ready", timeout_s=5))[0] == 200
        except MedserveError:
            return False

    async def ready(self, model: str) -> bool:
        try:
            path = f"/v2/models/{quote(model, safe='')}/ready"
            return (await self._request("GET", path, timeout_s=5))[0] == 200
        except MedserveError:
            return False

    async def metadata(self, model: str) -> dict[str, Any]:
        status, headers, body = await self._request("GET", f"/v2/models/{quote(model, safe='')}")
        if status != 200:
            raise _error(status, headers, body)
        return dict(orjson.loads(body))

    async def index(self) -> list[dict[str, Any]]:
        status, headers, body = await self._request("POST", "/v2/repository/index", b"{}", None, 5)
        if status != 200:
            raise _error(status, headers, body)
        return list(orjson.loads(body))

    async def stats(self, model: str | None = None) -> dict[str, Any]:
        path = f"/v2/models/{quote(model, safe='')}/stats" if model else "/v2/models/stats"
        status, headers, body = await self._request("GET", path)
        if status != 200:
            raise _error(status, headers, body)
        return dict(orjson.loads(body))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> OIPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class SyncOIPClient:
    """Blocking OIP v2 client (httpx) with the same `infer` as `OIPClient`, for job runners."""

    def __init__(
        self, base_url: str, *, timeout_s: float = 600.0, max_connections: int = 16
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=max_connections),
        )

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        try:
            return self._http.request(
                method, path, content=body, headers=headers, timeout=timeout_s or self.timeout_s
            )
        except httpx.TimeoutException:
            raise DeadlineExceeded(
                f"no answer from the model server within {timeout_s or self.timeout_s:.3g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"the model server at {self.base_url} cannot be reached ({type(exc).__name__})"
            ) from None

    def infer(
        self,
        model: str,
        inputs: dict[str, np.ndarray],
        parameters: dict[str, Any] | None = None,
        *,
        priority: str = "interactive",
        timeout_s: float | None = None,
        request_id: str | None = None,
        outputs: list[str] | None = None,
        version: str | None = None,
    ) -> InferResponse:
        path, body, headers = _infer_parts(
            model, inputs, parameters, priority, timeout_s, request_id, outputs, version
        )
        wait = timeout_s + 5.0 if timeout_s is not None else None
        resp = self._request("POST", path, body, headers, wait)
        return _response(resp.status_code, resp.headers, resp.content)

    def ready(self, model: str) -> bool:
        try:
            return (
                self._request(
                    "GET", f"/v2/models/{quote(model, safe='')}/ready", timeout_s=5
                ).status_code
                == 200
            )
        except MedserveError:
            return False

    def index(self) -> list[dict[str, Any]]:
        resp = self._request("POST", "/v2/repository/index", b"{}", None, 5)
        if resp.status_code != 200:
            raise _error(resp.status_code, resp.headers, resp.content)
        return list(resp.json())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SyncOIPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
