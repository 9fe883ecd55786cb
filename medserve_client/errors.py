"""The client's errors: one per kind of failure, each with the gateway's message and request id.

`APIError` carries what the gateway answered (`status`, `code`, `message`, `request_id`,
`retry_after`); `ConnectionFailed` means no answer at all. Catch `MedserveClientError` for both.
"""

from __future__ import annotations

from typing import Any


class MedserveClientError(Exception):
    """Base class of every error this client raises."""


class ConnectionFailed(MedserveClientError):
    """The gateway could not be reached (refused, DNS, TLS, timed out before an answer)."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.message = message
        self.url = url


class APIError(MedserveClientError):
    """The gateway answered with an error status; `message` says how to fix the call."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        request_id: str | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body


class InvalidRequest(APIError):
    """400 / 413 / 415 / 422: the request itself must change."""


class Unauthorized(APIError):
    """401 / 403: a missing or wrong API key."""


class NotFound(APIError):
    """404: no such model, job or artifact (or it belongs to another tenant)."""


class Conflict(APIError):
    """409: e.g. cancelling a finished job, or an idempotency key reused with other params."""


class RateLimited(APIError):
    """429: the key's rate limit; `retry_after` says when to try again."""


class Unavailable(APIError):
    """503: a model is loading or a queue is full; `retry_after` says when to try again."""


class ServerError(APIError):
    """500 / 502 / 504: the server or an engine behind it failed."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequest, 413: InvalidRequest, 415: InvalidRequest, 422: InvalidRequest,
    401: Unauthorized, 403: Unauthorized, 404: NotFound, 405: InvalidRequest, 409: Conflict,
    429: RateLimited, 503: Unavailable,
}  # fmt: skip


def error_for(
    status: int, body: Any, request_id: str | None, retry_after: float | None
) -> APIError:
    """The error for an answer: the envelope `{"error": {"code", "message"}}` or plain text."""
    code, message = "error", ""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code = str(err.get("code") or code)
            message = str(err.get("message") or "")
            request_id = request_id or err.get("request_id")
        elif isinstance(err, str):
            message = err
    elif isinstance(body, str):
        message = body[:500]
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    return cls(
        status, code, message or f"HTTP {status}", request_id=request_id,
        retry_after=retry_after, body=body,
    )  # fmt: skip
