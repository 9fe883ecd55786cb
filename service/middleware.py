"""The gateway's ASGI middleware: request id, body cap, API keys, rate limit, metrics, access log.

Pure ASGI (no BaseHTTPMiddleware) because it sits on the inference hot path. It also answers
the last-resort 500 itself, so even that response carries the request id and is counted.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import InternalError, MedserveError, Overloaded, PayloadTooLarge, render
from core.logging import request_id_var
from service.auth import Authenticator, RateLimiter, is_open
from service.metrics import GatewayMetrics

log = logging.getLogger("medserve.access")
errors_log = logging.getLogger("medserve.gateway")

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_QUIET = frozenset({"/livez", "/readyz", "/metrics"})
# Successful inference is logged at DEBUG: one write per request would cost more than the hop.
_HOT = frozenset(
    {"/v2/models/{model_name}/infer", "/v2/models/{model_name}/versions/{model_version}/infer"}
)


def new_request_id() -> str:
    return uuid.uuid4().hex


def _request_id(incoming: bytes | None) -> str:
    """The caller's X-Request-ID when it is safe to echo, else a fresh one."""
    if incoming:
        candidate = incoming.decode("latin-1")
        if _REQUEST_ID_OK.match(candidate):
            return candidate
    return new_request_id()


class _Exchange:
    """One request's passage: adds the request id to the answer, caps the streamed body."""

    def __init__(
        self, owner: GatewayMiddleware, send: Send, receive: Receive, path: str, request_id: str
    ) -> None:
        self.owner, self._send, self._receive = owner, send, receive
        self.path, self.request_id = path, request_id
        self.status = 500
        self.started = False
        self.cut_off = False  # the body passed the cap and 413 was sent: drop the app's answer
        self.seen = 0
        self.rid_header = (b"x-request-id", request_id.encode())

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if self.started:
                return
            self.started = True
            self.status = message["status"]
            message["headers"] = [*message.get("headers", []), self.rid_header]
        elif self.cut_off:
            return
        await self._send(message)

    async def receive(self) -> Message:
        """Count streamed body bytes; past the cap answer 413 and tell the app we are done."""
        message = await self._receive()
        if message["type"] == "http.request" and not self.cut_off:
            self.seen += len(message.get("body", b""))
            if self.seen > self.owner.max_body:
                if not self.started:
                    error = PayloadTooLarge(self.owner._too_large_message())
                    await self.owner._send_error(self.send, self.path, error, self.request_id)
                self.cut_off = True
                return {"type": "http.disconnect"}
        return message


class GatewayMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_inflight: int,
        metrics: GatewayMetrics,
        authenticator: Authenticator,
        limiter: RateLimiter,
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_inflight = max_inflight
        self.inflight = 0
        self.metrics = metrics
        self.auth = authenticator
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path: str = scope["path"]
        headers = dict(scope["headers"])
        request_id = _request_id(headers.get(b"x-request-id"))
        token = request_id_var.set(request_id)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["tenant"] = "default"
        exchange = _Exchange(self, send, receive, path, request_id)
        counted = path not in _QUIET
        if counted:
            self.inflight += 1
        try:
            error = await self._admit(scope, headers, path, state)
            if error is not None:
                await self._send_error(exchange.send, path, error, request_id)
            else:
                await self.app(scope, exchange.receive, exchange.send)
        except Exception as exc:  # the last resort: no trace, no request data in the answer
            if not exchange.cut_off:
                errors_log.error(
                    "unhandled error on %s %s", scope["method"], _route_of(scope), exc_info=exc
                )
            if not exchange.started:
                error = InternalError("internal error; see the server log")
                await self._send_error(exchange.send, path, error, request_id)
        finally:
            if counted:
                self.inflight -= 1
            self._account(scope, path, exchange.status, time.perf_counter() - start, state)
            request_id_var.reset(token)

    def _account(
        self, scope: Scope, path: str, status: int, elapsed: float, state: dict[str, Any]
    ) -> None:
        """Metrics and the access line (successful inference at DEBUG, the rest at INFO)."""
        route = _route_of(scope)
        self.metrics.observe_request(scope["method"], route, status, elapsed)
        quiet = path in _QUIET or (status < 400 and route in _HOT)
        level = logging.DEBUG if quiet else logging.INFO
        if log.isEnabledFor(level):
            log.log(
                level,
                "request",
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "tenant": state.get("tenant"),
                },
            )

    async def _admit(
        self, scope: Scope, headers: dict[bytes, bytes], path: str, state: dict[str, Any]
    ) -> MedserveError | None:
        """Checks that happen before any route runs; returns the error to answer with."""
        if self.inflight > self.max_inflight and path not in _QUIET:
            self.metrics.shed.inc()
            return Overloaded(
                f"the gateway holds {self.max_inflight} requests already "
                "(MEDSERVE_MAX_INFLIGHT); retry after the Retry-After delay",
                retry_after=1,
            )
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = 0
            if declared > self.max_body:
                return PayloadTooLarge(self._too_large_message())
        if self.auth.enabled and not is_open(path):
            try:
                key = self.auth.key_from_headers(headers)
                state["tenant"] = self.auth.tenant_for(key)
                if self.limiter.enabled and key is not None:
                    try:
                        await self.limiter.check(key, state["tenant"])
                    except MedserveError:
                        self.metrics.rate_limited.labels(state["tenant"]).inc()
                        raise
            except MedserveError as error:
                return error
        return None

    def _too_large_message(self) -> str:
        mb = self.max_body / (1 << 20)
        return f"the request body exceeds {mb:g} MB (MEDSERVE_MAX_BODY_MB); send a smaller request"

    @staticmethod
    async def _send_error(send: Send, path: str, error: MedserveError, request_id: str) -> None:
        status, headers, body = render(error, oip=is_oip(path), request_id=request_id)
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def is_oip(path: str) -> bool:
    """OIP routes answer errors as `{"error": msg}`, as OIP clients expect."""
    return path == "/v2" or path.startswith("/v2/")


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
