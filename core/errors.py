"""The platform's one error hierarchy, the one table that maps it to HTTP, and its renderer.

Adapters, workers, the gateway and jobs raise only these. Messages are written for the
caller: they say what was wrong and what to send instead, and never carry request data,
patient data or a stack trace. Importable without FastAPI or torch. `render` writes the one
body shape gateway and workers send: `{"error": {"code", "message", "request_id"}}`, or
`{"error": msg}` on OIP routes.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from core.constants import ERROR_CODE_HEADER


class MedserveError(Exception):
    """Base class. `message` is safe to show to a client."""

    code = "internal"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class BadRequest(MedserveError):
    """The request is malformed (not JSON, wrong OIP structure, bad tensor header)."""

    code = "bad_request"


class InvalidInput(MedserveError):
    """The request is well formed but its content cannot be served (wrong modality, NaNs...)."""

    code = "invalid_input"


class Unauthorized(MedserveError):
    code = "unauthorized"


class Forbidden(MedserveError):
    code = "forbidden"


class NotFound(MedserveError):
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(MedserveError):
    code = "conflict"


class PayloadTooLarge(MedserveError):
    code = "payload_too_large"


class UnsupportedMediaType(MedserveError):
    code = "unsupported_media_type"


class RateLimited(MedserveError):
    code = "rate_limited"


class ModelNotReady(MedserveError):
    code = "model_not_ready"


class Overloaded(MedserveError):
    """A bounded queue is full; the client should retry after `retry_after` seconds."""

    code = "overloaded"


class DeadlineExceeded(MedserveError):
    code = "timeout"


class UpstreamError(MedserveError):
    """A worker or engine answered with something the platform cannot use."""

    code = "upstream_error"


class Unavailable(MedserveError):
    """A dependency (worker, Redis, engine) cannot be reached."""

    code = "unavailable"


class Unreachable(Unavailable):
    """A worker or engine refused the connection (down or restarting)."""

    code = "unreachable"


class WeightsUnavailable(MedserveError):
    """Weights are missing or cannot be fetched (e.g. offline)."""

    code = "weights_unavailable"


class InternalError(MedserveError):
    code = "internal"


class MethodNotAllowed(MedserveError):
    code = "method_not_allowed"


class NotAcceptable(MedserveError):
    code = "not_acceptable"


class ConstraintUnsupported(MedserveError):
    """An engine cannot decode under the answer grammar (e.g. vLLM without structured outputs)."""

    code = "constraint_unsupported"


# The one table: error type -> HTTP status. Most specific class first wins (MRO lookup).
HTTP_STATUS: dict[type[MedserveError], int] = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    MethodNotAllowed: 405,
    NotAcceptable: 406,
    Conflict: 409,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    InvalidInput: 422,
    RateLimited: 429,
    InternalError: 500,
    UpstreamError: 502,
    ConstraintUnsupported: 502,
    ModelNotReady: 503,
    Overloaded: 503,
    Unavailable: 503,
    WeightsUnavailable: 503,
    DeadlineExceeded: 504,
    MedserveError: 500,
}


def _by_code() -> dict[str, type[MedserveError]]:
    """Every error type by code, subclasses outside the table included (ModelNotFound...)."""
    table: dict[str, type[MedserveError]] = {}
    stack: list[type[MedserveError]] = [MedserveError]
    while stack:
        cls = stack.pop(0)
        table[cls.code] = cls
        stack.extend(cls.__subclasses__())
    return table


# Reverse lookup for errors that crossed a process boundary as (status, code, message).
BY_CODE: dict[str, type[MedserveError]] = _by_code()


def http_status(error: MedserveError) -> int:
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def from_status(status: int, message: str, code: str | None = None) -> MedserveError:
    """Rebuild a platform error from a remote answer (worker or engine)."""
    if code and code in BY_CODE:
        return BY_CODE[code](message)
    return http_status_of(status)(message)


def http_status_of(status: int) -> type[MedserveError]:
    """The error type for a bare HTTP status (framework errors such as 404 on no route)."""
    for cls, cls_status in HTTP_STATUS.items():
        if cls_status == status and cls is not MedserveError:
            return cls
    return UpstreamError if status >= 500 else BadRequest


def render(
    error: MedserveError, *, oip: bool, request_id: str | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) for an error: the one renderer of gateway and workers.

    Headers: JSON content type, the error code (so a client rebuilds the exact type) and
    `Retry-After` whenever the caller may retry (an explicit delay, 429 or 503)."""
    status = http_status(error)
    if oip and status == 422:
        status = 400  # Triton and KServe answer every invalid inference request with 400
    doc: dict[str, Any]
    if oip:
        doc = {"error": error.message}
    else:
        doc = {"error": {"code": error.code, "message": error.message, "request_id": request_id}}
    headers = [
        (b"content-type", b"application/json"),
        (ERROR_CODE_HEADER.encode(), error.code.encode()),
    ]
    if error.retry_after is not None or status in (429, 503):
        seconds = max(1, math.ceil(error.retry_after or 1))
        headers.append((b"retry-after", str(seconds).encode()))
    return status, headers, orjson.dumps(doc)
