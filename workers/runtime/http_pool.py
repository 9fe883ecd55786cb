"""A small HTTP/1.1 client with a keep-alive pool, for the hops between platform processes.

The gateway forwards every OIP request to a worker; a general client (aiohttp) spends more CPU
per request there than the gateway's own work. This one writes each request with one
`transport.write`, parses answers with httptools (the parser uvicorn uses), and keeps idle
connections for `keepalive_s`. It speaks to `http://host:port` and `unix:/path.sock` servers.

Failure semantics the callers rely on: a refused connection raises `Refused`; a connection
dropped before the whole answer arrived raises `Dropped`; no answer within the deadline raises
`TimeoutError`; nothing is retried here (the gateway's replica table decides that). Idle
connections are kept for less time than our servers keep them open (4 s against 75 s), so a
request does not meet a connection its server is closing. Cancelling a request closes its
connection, which makes a worker drop the work (its disconnect check), as the gateway's
disconnect propagation needs.
"""

from __future__ import annotations

import asyncio
import collections
import time
from urllib.parse import urlsplit

import httptools

Answer = tuple[int, dict[str, str], bytes]


class Refused(ConnectionError):
    """The server could not be connected to."""


class Dropped(ConnectionError):
    """The connection closed before the whole answer arrived."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.received = False
        self.closed = False
        self.idle_since = 0.0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(Dropped("the server's answer is not valid HTTP"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(Dropped("the server closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        status = self.parser.get_status_code()
        if not self.parser.should_keep_alive():
            self.close()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((status, self.headers, body))

    # use
    def send(self, data: bytes, body: bytes | None) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.headers, self.chunks, self.received = {}, [], False
        if body and len(body) > 65536:
            self.transport.writelines((data, body))  # no copy of a large body
        else:
            self.transport.write(data + body if body else data)
        return self.waiter

    def expire(self) -> None:
        """The deadline passed with no whole answer: give up on this connection."""
        self._fail(TimeoutError())
        self.close()

    def _fail(self, error: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HTTPPool:
    """Pooled HTTP/1.1 requests to one server (`http://host:port` or `unix:/path`)."""

    def __init__(self, base_url: str, *, keepalive_s: float = 4.0, max_idle: int = 256) -> None:
        parts = urlsplit(base_url)
        self.unix_path = parts.path if parts.scheme == "unix" else None
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 80
        self.prefix = "" if self.unix_path else parts.path.rstrip("/")
        host = self.host if self.unix_path or parts.port is None else f"{self.host}:{self.port}"
        self.host_line = f"host: {host}\r\n".encode("latin-1")
        self.keepalive_s, self.max_idle = keepalive_s, max_idle
        self.idle: collections.deque[_Connection] = collections.deque()

    async def _connect(self, timeout_s: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                if self.unix_path is not None:
                    _, conn = await loop.create_unix_connection(_Connection, self.unix_path)
                else:
                    _, conn = await loop.create_connection(_Connection, self.host, self.port)
        except OSError as exc:
            raise Refused(str(exc)) from None
        return conn

    def _reuse(self) -> _Connection | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()  # the most recently used: its peer is least likely to close
            if not conn.closed and now - conn.idle_since < self.keepalive_s:
                return conn
            conn.close()
        return None

    def _release(self, conn: _Connection) -> None:
        if conn.closed or len(self.idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def _head(self, method: str, path: str, headers: dict[str, str] | None, size: int) -> bytes:
        lines = [f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode("latin-1"), self.host_line]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        if size or method in ("POST", "PUT", "PATCH"):
            lines.append(b"content-length: %d\r\n" % size)
        lines.append(b"\r\n")
        return b"".join(lines)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Answer:
        """One request and its whole answer: (status, lower-cased headers, body)."""
        head = self._head(method, path, headers, len(body) if body else 0)
        conn = self._reuse() or await self._connect(timeout_s)
        return await self._once(conn, head, body, timeout_s)

    async def _once(
        self, conn: _Connection, head: bytes, body: bytes | None, timeout_s: float | None
    ) -> Answer:
        waiter = conn.send(head, body)
        # A timer handle, not asyncio.timeout: this runs once per forwarded request.
        timer = None if timeout_s is None else waiter.get_loop().call_later(timeout_s, conn.expire)
        try:
            answer = await waiter
        except BaseException:  # dropped, cancelled or timed out: the server must see us go
            conn.close()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        self._release(conn)
        return answer

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()
