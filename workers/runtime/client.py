"""The one OIP v2 client for model workers (ours, Triton, any KServe v2 server).

`OIPClient` (asyncio, one keep-alive connection pool per server, `http_pool.HTTPPool`) serves
every caller: the gateway's /v2 forwarding (`request`, raw bytes), discovery and probes
(`index`, `ready`), metadata, and family routes (`infer`). `SyncOIPClient` is the same client
for threads (job runners): it runs an `OIPClient` on a private event loop. Errors come back as
`core.errors` types rebuilt from the worker's status, `{"error": msg}` body and error-code
header.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import quote

import numpy as np
import orjson

from core.constants import ERROR_CODE_HEADER, OIP_HEADER_LENGTH, PRIORITY_HEADER, TIMEOUT_HEADER
from core.errors import (
    DeadlineExceeded,
    MedserveError,
    NotFound,
    Unavailable,
    Unreachable,
    UpstreamError,
    from_status,
)
from workers.runtime.http_pool import Dropped, HTTPPool, Refused
from workers.runtime.oip import InferResponse, decode_response, decompress, encode_request

T = TypeVar("T")
Answer = tuple[int, dict[str, str], bytes]
MAX_RESPONSE_BYTES = 1 << 31


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
    headers = {PRIORITY_HEADER: priority}
    if header_length is not None:
        headers[OIP_HEADER_LENGTH] = str(header_length)
    else:
        headers["content-type"] = "application/json"
    if timeout_s is not None:
        headers[TIMEOUT_HEADER] = repr(float(timeout_s))
    if request_id:
        headers["x-request-id"] = request_id
    path = f"/v2/models/{quote(model, safe='')}"
    if version:
        path += f"/versions/{quote(version, safe='')}"
    return path + "/infer", body, headers


def error_of(status: int, headers: dict[str, str], body: bytes) -> MedserveError:
    """The platform error a server's non-200 answer stands for."""
    try:
        doc = orjson.loads(body)
        message = doc["error"] if isinstance(doc, dict) and "error" in doc else None
    except (orjson.JSONDecodeError, TypeError):
        message = None
    if isinstance(message, dict):  # the gateway's envelope
        message = message.get("message")
    if not isinstance(message, str):
        message = f"the model server answered HTTP {status}"
    error = from_status(status, message, headers.get(ERROR_CODE_HEADER))
    retry = headers.get("retry-after")
    if retry:
        try:
            error.retry_after = float(retry)
        except ValueError:
            pass
    return error


def response_of(status: int, headers: dict[str, str], body: bytes) -> InferResponse:
    if status != 200:
        raise error_of(status, headers, body)
    body = decompress(body, headers.get("content-encoding"), MAX_RESPONSE_BYTES)
    length = headers.get(OIP_HEADER_LENGTH)
    return decode_response(body, int(length) if length is not None else None)


def _json(status: int, headers: dict[str, str], body: bytes) -> Any:
    if status != 200:
        raise error_of(status, headers, body)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError("the model server's answer is not JSON") from None


class OIPClient:
    """Async OIP v2 client over one connection pool (`http://host:port` or `unix:/path`)."""

    def __init__(self, base_url: str, *, timeout_s: float = 600.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._pool: HTTPPool | None = None

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Answer:
        """One raw request: (status, lower-cased headers, body). Transport failures raise
        `Unreachable` (refused), `Unavailable` (dropped) or `DeadlineExceeded`."""
        if self._pool is None:
            self._pool = HTTPPool(self.base_url)
        wait = timeout_s if timeout_s is not None else self.timeout_s
        try:
            return await self._pool.request(method, path, body, headers, wait)
        except TimeoutError:
            raise DeadlineExceeded(f"no answer from the model server within {wait:.3g} s") from None
        except Refused:
            raise Unreachable(
                f"the model server at {self.base_url} cannot be reached; retry shortly",
                retry_after=1,
            ) from None
        except Dropped:
            raise Unavailable(
                f"the model server at {self.base_url} dropped the request; retry shortly",
                retry_after=1,
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
        return response_of(*await self.request("POST", path, body, headers, wait))

    async def ready(self, model: str, timeout_s: float = 5.0) -> bool:
        try:
            path = f"/v2/models/{quote(model, safe='')}/ready"
            return (await self.request("GET", path, timeout_s=timeout_s))[0] == 200
        except MedserveError:
            return False

    async def server_ready(self, timeout_s: float = 5.0) -> bool:
        try:
            return (await self.request("GET", "/v2/health/ready", timeout_s=timeout_s))[0] == 200
        except MedserveError:
            return False

    async def metadata(self, model: str, timeout_s: float | None = None) -> dict[str, Any]:
        path = f"/v2/models/{quote(model, safe='')}"
        return dict(_json(*await self.request("GET", path, timeout_s=timeout_s)))

    async def index(self, timeout_s: float = 5.0) -> list[dict[str, Any]] | None:
        """The server's model index; None when it has no repository extension."""
        try:
            doc = _json(*await self.request("POST", "/v2/repository/index", b"{}", None, timeout_s))
        except NotFound:
            return None
        if not isinstance(doc, list):
            raise UpstreamError("the model server's index is not a list")
        return [e for e in doc if isinstance(e, dict) and isinstance(e.get("name"), str)]

    async def stats(self, model: str | None = None) -> dict[str, Any]:
        path = f"/v2/models/{quote(model, safe='')}/stats" if model else "/v2/models/stats"
        return dict(_json(*await self.request("GET", path)))

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def __aenter__(self) -> OIPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class SyncOIPClient:
    """Blocking face of `OIPClient` for threads: each call runs on a private event loop."""

    def __init__(self, base_url: str, *, timeout_s: float = 600.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="oip-client", daemon=True
        )
        self._thread.start()
        self._client = OIPClient(base_url, timeout_s=timeout_s)

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()

    def infer(
        self,
        model: str,
        inputs: dict[str, np.ndarray],
        parameters: dict[str, Any] | None = None,
        **kw: Any,
    ) -> InferResponse:
        return self._run(self._client.infer(model, inputs, parameters, **kw))

    def ready(self, model: str) -> bool:
        return self._run(self._client.ready(model))

    def metadata(self, model: str) -> dict[str, Any]:
        return self._run(self._client.metadata(model))

    def index(self) -> list[dict[str, Any]] | None:
        return self._run(self._client.index())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> SyncOIPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
