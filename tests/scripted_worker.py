"""A scripted OIP peer for unit tests of balancing and failover: a real HTTP server on a real
socket (its own thread and loop) that answers like a worker, or fails the way a dying one does.

Modes: `ok` (echo INPUT0 back), `drop` (read the request, close without a byte of answer: a
SIGKILLed worker), `draining` (503 `unavailable`: a worker shutting down), `invalid` (422).
Real workers (tests.harness) are used wherever the failure can be produced for real.
"""

from __future__ import annotations

import asyncio
import json
import threading

from core.net import free_port
from workers.runtime.oip import HEADER_LENGTH, InferResponse, decode_request, encode_response


class ScriptedWorker:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None, mode: str = "ok",
                 models: tuple[str, ...] = ("echo",)) -> None:  # fmt: skip
        self.host, self.port, self.mode, self.models = host, port or free_port(), mode, models
        self.url = f"http://{host}:{self.port}"
        self.infers = 0
        self.delay_s = 0.0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ScriptedWorker:
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        """Close the listener and every open connection (a worker that died)."""

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, self.host, self.port)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                length = int({k.lower(): v for k, v in headers.items()}.get("content-length", 0))
                body = await reader.readexactly(length) if length else b""
                if not await self._answer(writer, method, path, body, headers):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _echo(self, writer: asyncio.StreamWriter, path: str, body: bytes,
                    headers: dict[str, str]) -> bool:  # fmt: skip
        length = {k.lower(): v for k, v in headers.items()}.get(HEADER_LENGTH.lower())
        request = decode_request(body, int(length) if length else None)
        outputs = {"OUTPUT0": next(iter(request.inputs.values()))}
        answer = InferResponse(path.split("/")[3], outputs, parameters={"replica": self.url})
        data, header_length = encode_response(answer, request)
        head = ["HTTP/1.1 200 OK", f"content-length: {len(data)}"]
        if header_length is not None:
            head.append(f"{HEADER_LENGTH}: {header_length}")
        else:
            head.append("content-type: application/json")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()
        return True

    async def _answer(self, writer: asyncio.StreamWriter, method: str, path: str,
                      body: bytes, headers: dict[str, str]) -> bool:  # fmt: skip
        status, doc, extra = 200, None, {}
        if path == "/v2/repository/index":
            doc = [{"name": m, "state": "READY"} for m in self.models]
        elif path.endswith("/infer"):
            self.infers += 1
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self.mode == "drop":
                return False  # the connection closes with no answer
            if self.mode == "draining":
                status, doc = 503, {"error": "this worker is shutting down; retry on another"}
                extra = {"x-medserve-error-code": "unavailable", "retry-after": "1"}
            elif self.mode == "invalid":
                status, doc = 422, {"error": "INPUT0 must be FP32"}
                extra = {"x-medserve-error-code": "invalid_input"}
            else:
                return await self._echo(writer, path, body, headers)
        elif method == "GET" and path.startswith("/v2/models/"):
            doc = {"name": path.split("/")[3], "versions": ["1"], "platform": "scripted"}
        else:
            status, doc = 404, {"error": "not found"}
        data = json.dumps(doc).encode()
        head = [f"HTTP/1.1 {status} X", "content-type: application/json",
                f"content-length: {len(data)}"]  # fmt: skip
        head += [f"{k}: {v}" for k, v in extra.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()
        return True
