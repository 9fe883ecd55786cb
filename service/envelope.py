"""The one error body: `{"error": {"code", "message", "request_id"}}`; OIP routes `{"error": msg}`.

Used by the exception handlers and by the middleware (which answers 401/413/429 and the
last-resort 500 itself), so every error the gateway sends has the same shape.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from service.errors import MedserveError, http_status

OIP_PREFIX = "/v2"


def is_oip(path: str) -> bool:
    return path == OIP_PREFIX or path.startswith(OIP_PREFIX + "/")


def error_body(path: str, code: str, message: str, request_id: str | None) -> bytes:
    doc: dict[str, Any]
    if is_oip(path):
        doc = {"error": message}
    else:
        doc = {"error": {"code": code, "message": message, "request_id": request_id}}
    return orjson.dumps(doc)


def error_headers(error: MedserveError | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", b"application/json")]
    if error is not None and error.retry_after is not None:
        seconds = max(1, math.ceil(error.retry_after))
        headers.append((b"retry-after", str(seconds).encode()))
    return headers


def render_error(
    path: str, error: MedserveError, request_id: str | None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) for a platform error."""
    body = error_body(path, error.code, error.message, request_id)
    return http_status(error), error_headers(error), body
