"""The worker's inference path: `POST /v2/models/{m}[/versions/{v}]/infer` as a raw ASGI app.

It reads the body itself (tritonclient sends no Content-Type), decodes and preprocesses it
(in a thread pool unless measured cheap), queues it on the model's batcher, watches for the
client going away while it waits, and answers OIP v2 JSON or binary tensors. Errors are
`{"error": msg}` with the status from `core.errors` and an `X-Medserve-Error-Code` header
so a client can rebuild the exact error type.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.types import Receive, Scope, Send

from core.errors import (
    BadRequest,
    InternalError,
    MedserveError,
    PayloadTooLarge,
    Unavailable,
    render,
)
from core.logging import request_id_var
from workers.runtime.adapter import ModelAdapter
from workers.runtime.oip import (
    HEADER_LENGTH,
    InferRequest,
    InferResponse,
    decode_request,
    decompress,
    encode_response,
)
from workers.runtime.params import parse_priority, parse_timeout
from workers.runtime.state import WorkerState

log = logging.getLogger("medserve.worker")

_JSON = b"application/json"
INLINE_MAX_BYTES = 64 * 1024  # larger bodies are always decoded in the thread pool
INLINE_MAX_S = 0.0005  # stages cheaper than this (CPU time, averaged) run on the event loop
INLINE_PROBE_CALLS = 16  # calls measured in the pool before a stage may run inline


class _Disconnected(Exception):
    """The client went away; nothing is sent back."""


_ID_PREFIX = uuid.uuid4().hex[:16]  # per process; ids need to be unique, not secret
_ID_COUNTER = itertools.count(1)


def request_id_from(raw: bytes | str | None) -> str:
    """The caller's X-Request-ID when it is short and printable, else a fresh one
    (a process prefix and a counter: no system call on the hot path)."""
    if raw:
        value = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        if len(value) <= 128 and value.isprintable() and value.isascii():
            return value
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def error_parts(error: MedserveError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return render(error, oip=True)


class Stage:
    """Runs one CPU stage (decode+preprocess, postprocess+encode) of one model inline on the
    event loop while it is measured to be cheap, else in the thread pool.

    A thread hop costs tens of microseconds plus a wait for the GIL, far more than decoding a
    small tensor; a stage that costs real CPU must not stall the loop. The cost is the
    thread's CPU time (GIL waits excluded), averaged; the first calls always use the pool.
    """

    __slots__ = ("avg_s", "calls")

    def __init__(self) -> None:
        self.avg_s = 0.0
        self.calls = 0

    @property
    def inline(self) -> bool:
        return self.calls >= INLINE_PROBE_CALLS and self.avg_s < INLINE_MAX_S

    def to_json(self) -> dict[str, Any]:
        return {"cpu_us": round(self.avg_s * 1e6, 1), "calls": self.calls, "inline": self.inline}

    async def run(
        self, pool: Any, fn: Callable[..., Any], args: tuple[Any, ...], inline_ok: bool = True
    ) -> Any:
        if inline_ok and self.inline:
            return self._timed(fn, args)
        return await asyncio.get_running_loop().run_in_executor(pool, self._timed, fn, args)

    def _timed(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        t0 = time.thread_time()
        try:
            return fn(*args)
        finally:
            cost = time.thread_time() - t0
            self.calls += 1
            self.avg_s = cost if self.calls == 1 else 0.9 * self.avg_s + 0.1 * cost


class InferEndpoint:
    """`POST /v2/models/{model}[/versions/{version}]/infer` as a raw ASGI app."""

    def __init__(self, state: WorkerState) -> None:
        self.state = state
        self.body_limit = int(state.settings.max_body_mb * 1024 * 1024)
        self.stages = state.stages

    def _stage(self, model: str, kind: str) -> Stage:
        stage = self.stages.get((model, kind))
        if stage is None:
            stage = self.stages[model, kind] = Stage()
        return stage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        rid = request_id_from(headers.get(b"x-request-id"))
        token = request_id_var.set(rid)
        try:
            status, out_headers, body = await self._handle(scope, receive, headers, rid)
        except _Disconnected:
            log.info("client disconnected; queued work dropped")
            return
        except MedserveError as exc:
            status, out_headers, body = error_parts(exc)
            level = logging.WARNING if status >= 500 else logging.INFO
            log.log(level, "infer refused", extra={"status": status, "code": exc.code})
        except Exception as exc:  # a bug: answer safely, log the type only
            log.error("infer crashed", extra={"error_type": type(exc).__name__})
            status, out_headers, body = error_parts(
                InternalError("internal error; it was logged with the request id")
            )
        finally:
            request_id_var.reset(token)
        out_headers.append((b"x-request-id", rid.encode()))
        out_headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": body})

    async def _handle(
        self, scope: Scope, receive: Receive, headers: dict[bytes, bytes], rid: str
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        state = self.state
        state.ensure_started()
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        params = scope["path_params"]
        if state.draining:
            raise Unavailable("this worker is shutting down; retry on another", retry_after=1)
        batcher = state.batcher(params["model"], params.get("version"))
        adapter = batcher.adapter
        raw = await self._read_body(receive, headers)
        default_timeout = adapter.manifest.batching.timeout_s or state.settings.request_timeout_s
        batcher.begin_arrival()
        try:
            request, items, priority, timeout = await self._stage(adapter.name, "pre").run(
                state.pool,
                _prepare,
                (adapter, raw, headers, self.body_limit, default_timeout),
                inline_ok=len(raw) <= INLINE_MAX_BYTES and b"content-encoding" not in headers,
            )
            pending = batcher.submit(
                items,
                priority=priority,
                timeout_s=timeout - (loop.time() - arrived),
                request_id=rid,
            )
        finally:
            batcher.end_arrival()
        results = await self._wait(pending.future, receive, pending.cancel)
        body, header_length = await self._stage(adapter.name, "post").run(
            state.pool, _finish, (adapter, request, results)
        )
        out: list[tuple[bytes, bytes]] = []
        if header_length is None:
            out.append((b"content-type", _JSON))
        else:
            out.append((b"content-type", b"application/octet-stream"))
            out.append((HEADER_LENGTH.lower().encode(), str(header_length).encode()))
        return 200, out, body

    async def run(
        self, model: str, version: str | None, request: InferRequest, request_id: str
    ) -> InferResponse:
        """One decoded request (the gRPC path): preprocess, batch, postprocess."""
        state = self.state
        state.ensure_started()
        if state.draining:
            raise Unavailable("this worker is shutting down; retry on another", retry_after=1)
        batcher = state.batcher(model, version)
        adapter = batcher.adapter
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        default = adapter.manifest.batching.timeout_s or state.settings.request_timeout_s
        priority = parse_priority(None, request.parameters)
        timeout = parse_timeout(None, request.parameters, default)
        batcher.begin_arrival()
        try:
            items = await self._stage(adapter.name, "pre").run(
                state.pool, _guard, (adapter.preprocess, request, adapter.name)
            )
            pending = batcher.submit(items, priority=priority, request_id=request_id,
                                     timeout_s=timeout - (loop.time() - arrived))  # fmt: skip
        finally:
            batcher.end_arrival()
        try:
            results = await pending.future
        except asyncio.CancelledError:
            pending.cancel()  # the client went away: drop its queued work
            raise
        response: InferResponse = await self._stage(adapter.name, "post").run(
            state.pool, _guard, (adapter.postprocess, request, results, adapter.name)
        )
        if response.id is None:
            response.id = request.id
        return response

    async def _read_body(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes:
        declared = headers.get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.body_limit:
            raise PayloadTooLarge(
                f"the body is {int(declared)} bytes; this worker accepts at most {self.body_limit}"
            )
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.body_limit:
                raise PayloadTooLarge(f"the body exceeds {self.body_limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @staticmethod
    async def _wait(future: asyncio.Future[Any], receive: Receive, cancel: Any) -> Any:
        """Await the batcher; if the client disconnects first, drop its queued work."""
        listener = asyncio.ensure_future(receive())
        try:
            await asyncio.wait((future, listener), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not listener.done():
                listener.cancel()
        if not future.done():
            if listener.result().get("type") == "http.disconnect":
                cancel()
                raise _Disconnected
            await asyncio.wait((future,))
        return future.result()


def _prepare(
    adapter: ModelAdapter,
    raw: bytes,
    headers: dict[bytes, bytes],
    limit: int,
    default_timeout: float,
) -> tuple[InferRequest, list[Any], str, float]:
    """Decode, read priority and timeout, preprocess (runs in the thread pool)."""
    encoding = headers.get(b"content-encoding")
    body = decompress(raw, encoding.decode("latin-1").strip().lower() if encoding else None, limit)
    header_length: int | None = None
    length = headers.get(HEADER_LENGTH.lower().encode())
    if length is not None:
        try:
            header_length = int(length)
        except ValueError:
            raise BadRequest(f"{HEADER_LENGTH} must be an integer") from None
    request = decode_request(body, header_length)
    priority = parse_priority(headers.get(b"x-medserve-priority"), request.parameters)
    timeout = parse_timeout(
        headers.get(b"x-medserve-timeout-s"), request.parameters, default_timeout
    )
    return request, _guard(adapter.preprocess, request, adapter.name), priority, timeout


def _finish(
    adapter: ModelAdapter, request: InferRequest, results: list[Any]
) -> tuple[bytes, int | None]:
    response = _guard(adapter.postprocess, request, results, adapter.name)
    if response.id is None:
        response.id = request.id
    return encode_response(response, request)


def _guard(fn: Any, *args: Any) -> Any:
    """Call adapter code; anything but a platform error becomes a safe InternalError."""
    *call_args, name = args
    try:
        return fn(*call_args)
    except MedserveError:
        raise
    except Exception as exc:
        log.error("adapter error", extra={"model": name, "error_type": type(exc).__name__})
        raise InternalError(
            f"model '{name}' failed on this request; the error was logged with the request id"
        ) from None
