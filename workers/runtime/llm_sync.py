"""A blocking face of the one OpenAI-compatible client (`llm_client.LLMClient`), for job runners.

Jobs are synchronous code with thread pools; `LLMClient` is async. `EventLoop` runs a private
asyncio loop on a daemon thread, so any thread can run a coroutine on it and wait; `SyncLLMClient`
keeps one pooled `LLMClient` session on that loop, maps HTTP statuses to `core.errors` types and
retries a busy or restarting server with backoff, as `workers.jobs.models` does for workers.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from core.errors import (
    InvalidInput,
    MedserveError,
    Overloaded,
    Unavailable,
    UpstreamError,
)
from workers.runtime.llm_client import LLMClient

T = TypeVar("T")
RETRYABLE = (Overloaded, Unavailable)


class EventLoop:
    """A private asyncio loop on a daemon thread; `run(coro)` blocks until its result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def _status_error(status: int, data: Any, base_url: str) -> MedserveError:
    detail = ""
    if isinstance(data, dict):
        error = data.get("error", data)
        message = error.get("message") if isinstance(error, dict) else error
        detail = f": {str(message)[:300]}" if message else ""
    if status in (429, 503):
        return Overloaded(f"the LLM endpoint at {base_url} is busy (HTTP {status})", retry_after=1)
    if status in (400, 404, 413, 422):
        return InvalidInput(f"the LLM endpoint at {base_url} refused the request{detail}")
    return UpstreamError(f"the LLM endpoint at {base_url} answered HTTP {status}{detail}")


class SyncLLMClient:
    """Thread-safe blocking calls to an OpenAI-compatible server (`/v1` added when missing)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout_s: float = 600.0,
        retry_for_s: float = 300.0,
    ) -> None:
        self.events = EventLoop()
        self.client = LLMClient(base_url, api_key, timeout_s)
        self.retry_for_s = retry_for_s

    @property
    def base_url(self) -> str:
        return self.client.base_url

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine that uses `self.client` (e.g. MedVAL's evaluation) on the loop."""
        return self.events.run(coro)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """The parsed JSON answer of a POST that must succeed; retried while the server is
        busy or unreachable, for up to `retry_for_s`."""
        deadline = time.monotonic() + self.retry_for_s
        delay = 0.5
        while True:
            try:
                status, data = self.events.run(self.client.post_json(path, body))
                if status != 200:
                    raise _status_error(status, data, self.base_url)
                return data
            except RETRYABLE as exc:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(exc.retry_after or delay)
                delay = min(delay * 2, 5.0)

    def chat(self, body: dict[str, Any]) -> tuple[str, str]:
        """(content, finish_reason) of one `/chat/completions` call."""
        data = self.post("/chat/completions", body)
        try:
            choice = data["choices"][0]
            return str(choice["message"].get("content") or ""), str(choice.get("finish_reason"))
        except (KeyError, IndexError, TypeError, AttributeError):
            raise UpstreamError(f"the LLM endpoint at {self.base_url} gave no choices") from None

    def models(self) -> list[dict[str, Any]]:
        return self.events.run(self.client.models())

    def close(self) -> None:
        try:
            self.events.run(self.client.close(), timeout_s=10)
        finally:
            self.events.close()
