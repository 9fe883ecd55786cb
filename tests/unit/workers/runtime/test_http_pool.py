"""The pooled HTTP/1.1 client of the hops between platform processes, against real sockets.

Each test runs a small asyncio server that answers the way a case needs (keep-alive, chunked,
closing an idle connection, dropping mid-answer, never answering) and checks what the client
does and what the server saw."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from core.net import free_port
from workers.runtime.http_pool import Dropped, HTTPPool, Refused

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if line)
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return lines[0].encode(), headers, body


def answer(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"content-length: {len(body)}", "x-served: yes", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def serving(handler: Handler, unix: Path | None = None) -> tuple[asyncio.Server, dict]:
    seen: dict = {"connections": 0, "requests": [], "eof": asyncio.Event()}

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["connections"] += 1
        try:
            await handler(reader, writer, seen)
        except (asyncio.IncompleteReadError, ConnectionError):
            seen["eof"].set()
        finally:
            writer.close()

    if unix is not None:
        return await asyncio.start_unix_server(on_connect, path=str(unix)), seen
    return await asyncio.start_server(on_connect, "127.0.0.1", 0), seen


def url_of(server: asyncio.Server) -> str:
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def echo_forever(reader, writer, seen) -> None:
    while True:
        line, headers, body = await read_request(reader)
        seen["requests"].append((line, headers, body))
        writer.write(answer(body))
        await writer.drain()


def test_requests_reuse_one_connection_and_come_back_whole() -> None:
    async def main() -> None:
        server, seen = await serving(echo_forever)
        pool = HTTPPool(url_of(server))
        for i in range(3):
            status, headers, body = await pool.request(
                "POST", f"/v2/models/m/infer?i={i}", b"x" * (i + 1), {"X-Request-ID": "r1"}
            )
            assert (status, headers["x-served"], body) == (200, "yes", b"x" * (i + 1))
        big = bytes(range(256)) * 1024  # written without a copy, still whole
        assert (await pool.request("POST", "/big", big))[2] == big
        assert seen["connections"] == 1
        line, sent, _ = seen["requests"][0]
        assert line == b"POST /v2/models/m/infer?i=0 HTTP/1.1"
        assert sent["X-Request-ID"] == "r1" and sent["content-length"] == "1"
        pool.close()
        server.close()

    asyncio.run(main())


def test_a_chunked_answer_is_joined_and_a_closing_one_is_not_reused() -> None:
    async def handler(reader, writer, seen) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")  # fmt: skip
        await read_request(reader)
        writer.write(answer(b"last", "connection: close"))
        await writer.drain()

    async def main() -> None:
        server, _seen = await serving(handler)
        pool = HTTPPool(url_of(server))
        assert (await pool.request("GET", "/a"))[2] == b"abcde"
        assert (await pool.request("GET", "/b"))[2] == b"last"
        await asyncio.sleep(0.05)
        assert len(pool.idle) == 0  # the answer said connection: close
        server.close()

    asyncio.run(main())


def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    async def handler(reader, writer, seen) -> None:
        _, _, body = await read_request(reader)
        writer.write(answer(body))  # keep-alive by the headers, then closed anyway
        await writer.drain()

    async def main() -> None:
        server, seen = await serving(handler)
        pool = HTTPPool(url_of(server))
        assert (await pool.request("POST", "/one", b"1"))[2] == b"1"
        await asyncio.sleep(0.1)  # the close reaches the client
        assert (await pool.request("POST", "/two", b"2"))[2] == b"2"
        assert seen["connections"] == 2
        server.close()

    asyncio.run(main())


def test_a_request_dropped_on_a_reused_connection_is_not_sent_again() -> None:
    async def handler(reader, writer, seen) -> None:
        _, _, body = await read_request(reader)
        writer.write(answer(body))
        await writer.drain()
        seen["requests"].append(await read_request(reader))  # then gone without an answer

    async def main() -> None:
        server, seen = await serving(handler)
        pool = HTTPPool(url_of(server))
        await pool.request("POST", "/one", b"1")
        with pytest.raises(Dropped):
            await pool.request("POST", "/two", b"2")
        assert seen["connections"] == 1 and len(seen["requests"]) == 1
        server.close()

    asyncio.run(main())


def test_an_answer_cut_off_midway_is_dropped_and_not_retried() -> None:
    async def handler(reader, writer, seen) -> None:
        await read_request(reader)
        writer.write(answer(b"0123456789")[:-4])
        await writer.drain()

    async def main() -> None:
        server, seen = await serving(handler)
        with pytest.raises(Dropped):
            await HTTPPool(url_of(server)).request("POST", "/", b"x")
        assert seen["connections"] == 1
        server.close()

    asyncio.run(main())


def test_no_answer_in_time_raises_timeout_and_closes_the_connection() -> None:
    async def handler(reader, writer, seen) -> None:
        await read_request(reader)
        await reader.read(1)  # b"" when the client closes
        seen["eof"].set()

    async def main() -> None:
        server, seen = await serving(handler)
        pool = HTTPPool(url_of(server))
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await pool.request("POST", "/slow", b"x", timeout_s=0.3)
        assert 0.25 < time.monotonic() - started < 2.0
        await asyncio.wait_for(seen["eof"].wait(), 2.0)
        server.close()

    asyncio.run(main())


def test_cancelling_a_request_closes_its_connection() -> None:
    async def handler(reader, writer, seen) -> None:
        await read_request(reader)
        await reader.read(1)
        seen["eof"].set()

    async def main() -> None:
        server, seen = await serving(handler)
        task = asyncio.ensure_future(HTTPPool(url_of(server)).request("POST", "/", b"x"))
        await asyncio.sleep(0.2)
        task.cancel()
        await asyncio.wait_for(seen["eof"].wait(), 2.0)
        server.close()

    asyncio.run(main())


def test_nothing_listening_is_refused() -> None:
    async def main() -> None:
        with pytest.raises(Refused):
            await HTTPPool(f"http://127.0.0.1:{free_port()}").request("GET", "/", timeout_s=2)

    asyncio.run(main())


def test_a_unix_socket_server_is_reached_by_its_path(tmp_path: Path) -> None:
    async def main() -> None:
        sock = tmp_path / "worker.sock"
        server, seen = await serving(echo_forever, unix=sock)
        pool = HTTPPool(f"unix:{sock}")
        assert (await pool.request("POST", "/v2/models/m/infer", b"abc"))[2] == b"abc"
        assert seen["requests"][0][1]["host"] == "localhost"
        server.close()

    asyncio.run(main())
