"""How a call reaches the gateway: options, auth, bounded retries that honour Retry-After.

A route method builds a `Call` (method, path, body, how to read the answer); `SyncTransport`
and `AsyncTransport` send it with httpx. A 429 or 503 is retried after its `Retry-After`
delay (capped), as is a connection that could not be opened; nothing else is retried, so a
request the server may have started is never sent twice.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import httpx

from medserve_client.errors import ConnectionFailed, error_for

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"
VERSION = "0.1.0"
RETRY_STATUSES = (429, 503)
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: Any = None
    params: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    accept: tuple[int, ...] = ()  # error statuses whose body is still the answer (/readyz 503)


@dataclass(frozen=True)
class Options:
    """Where the gateway is, the key, and the timeout and retry budget of every call."""

    base_url: str = DEFAULT_URL
    api_key: str | None = None
    timeout: float | httpx.Timeout = 600.0
    max_retries: int = 3
    max_retry_wait_s: float = 30.0
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, base_url: str | None, api_key: str | None, **rest: Any) -> Options:
        """Unset URL and key come from MEDSERVE_URL and MEDSERVE_API_KEY."""
        url = base_url or os.environ.get("MEDSERVE_URL") or DEFAULT_URL
        key = api_key if api_key is not None else os.environ.get("MEDSERVE_API_KEY") or None
        return cls(url.rstrip("/"), key, **{k: v for k, v in rest.items() if v is not None})

    def http_headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"medserve-client/{VERSION}", **self.headers}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def http_timeout(self) -> httpx.Timeout:
        if isinstance(self.timeout, httpx.Timeout):
            return self.timeout
        return httpx.Timeout(self.timeout, connect=min(10.0, self.timeout))

    def with_changes(self, **changes: Any) -> Options:
        allowed = {"timeout", "max_retries", "max_retry_wait_s"}
        if set(changes) - allowed:
            raise TypeError(f"with_options takes {', '.join(sorted(allowed))}; make a new client "
                            "for another URL, key or headers")  # fmt: skip
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def retry_after(response: httpx.Response) -> float | None:
    """The `Retry-After` header in seconds (delta or HTTP date), or None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def delay_for(options: Options, attempt: int, response: httpx.Response | None) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or None when the call must not retry."""
    if attempt >= options.max_retries:
        return None
    if response is not None:
        if response.status_code not in RETRY_STATUSES:
            return None
        wait = retry_after(response)
        if wait is not None:
            return min(wait, options.max_retry_wait_s)
    return min(0.5 * 2**attempt, options.max_retry_wait_s)


def finish(call: Call[T], response: httpx.Response) -> T:
    """The parsed answer, or the `APIError` for an error status."""
    if response.status_code >= 400 and response.status_code not in call.accept:
        raise answer_error(response)
    return call.parse(response)


def answer_error(response: httpx.Response) -> Exception:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return error_for(
        response.status_code, body, response.headers.get("x-request-id"), retry_after(response)
    )


def unreachable(options: Options, exc: Exception) -> ConnectionFailed:
    """The error for a call that got no answer, saying what to check."""
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, NOT_SENT):
        message = (
            f"the medserve gateway at {options.base_url} did not answer in time "
            f"({type(exc).__name__}); allow longer with timeout= (seconds)"
        )
    else:
        message = (
            f"cannot reach the medserve gateway at {options.base_url} ({type(exc).__name__}); "
            "is `medserve serve` running there? Set the URL with MEDSERVE_URL or base_url="
        )
    return ConnectionFailed(message, options.base_url)


def _request_args(call: Call[Any]) -> dict[str, Any]:
    pairs = (("json", call.json), ("params", call.params), ("data", call.data),
             ("files", call.files), ("headers", call.headers))  # fmt: skip
    return {k: v for k, v in pairs if v is not None}


class SyncTransport:
    """Blocking calls over one pooled `httpx.Client`."""

    def __init__(self, options: Options, http: httpx.Client | None = None) -> None:
        self.options = options
        self._http = http or httpx.Client(
            base_url=options.base_url, headers=options.http_headers(),
            timeout=options.http_timeout(),
        )  # fmt: skip

    def _send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    call.method, call.path, timeout=self.options.http_timeout(),
                    **_request_args(call),
                )  # fmt: skip
            except NOT_SENT as exc:
                wait = delay_for(self.options, attempt, None)
                if wait is None:
                    raise unreachable(self.options, exc) from None
            except httpx.TransportError as exc:
                raise unreachable(self.options, exc) from None
            else:
                wait = delay_for(self.options, attempt, response)
                if wait is None:
                    return finish(call, response)
                response.close()
            time.sleep(wait)
            attempt += 1

    def close(self) -> None:
        self._http.close()


class AsyncTransport:
    """The same calls over one pooled `httpx.AsyncClient`."""

    def __init__(self, options: Options, http: httpx.AsyncClient | None = None) -> None:
        self.options = options
        self._http = http or httpx.AsyncClient(
            base_url=options.base_url, headers=options.http_headers(),
            timeout=options.http_timeout(),
        )  # fmt: skip

    async def _send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    call.method, call.path, timeout=self.options.http_timeout(),
                    **_request_args(call),
                )  # fmt: skip
            except NOT_SENT as exc:
                wait = delay_for(self.options, attempt, None)
                if wait is None:
                    raise unreachable(self.options, exc) from None
            except httpx.TransportError as exc:
                raise unreachable(self.options, exc) from None
            else:
                wait = delay_for(self.options, attempt, response)
                if wait is None:
                    return finish(call, response)
                await response.aclose()
            await asyncio.sleep(wait)
            attempt += 1

    async def aclose(self) -> None:
        await self._http.aclose()
