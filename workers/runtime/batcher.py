"""One dynamic batcher per model: a bounded, two-priority queue on the event loop feeding a
single executor thread that calls `adapter.predict(items)`.

A request is several items (what `preprocess` returned); it completes when all of them are
done. A batch is formed from the oldest queued item's `key` (interactive before batch) and
filled with items of the same key, up to `max_batch_size`; items of other keys wait for a
later batch. After the first item arrives the batcher waits at most `max_queue_delay_ms` for
the batch to fill, and stops waiting early once no request for this model is still being
decoded (nothing more is on its way), so a lone request pays no delay.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from core.errors import (
    DeadlineExceeded,
    InternalError,
    InvalidInput,
    MedserveError,
    Overloaded,
    Unavailable,
)
from workers.runtime.adapter import Item, ModelAdapter
from workers.runtime.batch_stats import BatcherStats, Counter, snapshot

log = logging.getLogger("medserve.worker.batcher")

PRIORITIES = ("interactive", "batch")


@dataclass(frozen=True)
class BatchConfig:
    max_batch_size: int = 8
    max_queue_delay_ms: float = 5.0
    max_queue_size: int = 256


class Pending:
    """A submitted request: await `future` for its results (one per item, in order)."""

    __slots__ = (
        "batcher",
        "deadline",
        "done",
        "enqueued",
        "future",
        "queued",
        "remaining",
        "request_id",
        "results",
        "timeout_s",
        "timer",
    )

    def __init__(self, batcher: Batcher, n: int, request_id: str, loop_now: float) -> None:
        self.batcher = batcher
        self.future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.results: list[Any] = [None] * n
        self.remaining = n
        self.queued = n
        self.request_id = request_id
        self.enqueued = loop_now
        self.deadline: float | None = None
        self.timeout_s: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.done = False

    def cancel(self) -> None:
        """Drop this request's queued items (its caller went away)."""
        if not self.done:
            self.batcher.stats.cancelled += 1
            self.batcher._finish(self, cancelled=True)


class _Entry:
    __slots__ = ("index", "item", "key", "request")

    def __init__(self, request: Pending, index: int, item: Item) -> None:
        self.request = request
        self.index = index
        self.item = item
        self.key: Hashable = item.key


class Batcher:
    """Dynamic batching for one adapter. Create and `start()` inside a running event loop."""

    def __init__(self, adapter: ModelAdapter, config: BatchConfig) -> None:
        if config.max_batch_size < 1 or config.max_queue_size < 1:
            raise ValueError("max_batch_size and max_queue_size must be at least 1")
        self.adapter = adapter
        self.name = adapter.name
        self.config = config
        self.stats = BatcherStats()
        self.incoming = 0  # requests being decoded for this model, not yet submitted
        self._queues: tuple[deque[_Entry], deque[_Entry]] = (deque(), deque())
        self._queued = 0
        self._busy = False
        self._in_flight = 0
        self._accepting = True
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"predict-{self.name}")
        self._ema_batch_s = 0.0

    @property
    def queue_depth(self) -> int:
        return self._queued

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    # --- submission -------------------------------------------------------------------------

    def begin_arrival(self) -> None:
        """A request for this model is being decoded: worth waiting for when batching."""
        self.incoming += 1

    def end_arrival(self) -> None:
        self.incoming -= 1
        if self.incoming <= 0:
            self.incoming = 0
            self._wakeup.set()

    def submit(
        self,
        items: list[Item],
        *,
        priority: str = "interactive",
        timeout_s: float | None = None,
        request_id: str = "-",
    ) -> Pending:
        """Queue one request's items; raises `Overloaded` when the queue cannot take them."""
        if not self._accepting:
            raise Unavailable(
                f"model '{self.name}' is shutting down on this worker; retry on another",
                retry_after=1,
            )
        n = len(items)
        limit = self.config.max_queue_size
        if n > limit:
            raise InvalidInput(
                f"the request has {n} items but model '{self.name}' queues at most {limit}; "
                "split it into smaller requests"
            )
        if self._queued + n > limit:
            self.stats.rejected += 1
            raise Overloaded(
                f"model '{self.name}' has {self._queued} items queued (limit {limit}); "
                "retry after the Retry-After delay",
                retry_after=self._retry_after(),
            )
        loop = asyncio.get_running_loop()
        now = loop.time()
        pending = Pending(self, n, request_id, now)
        if n == 0:
            pending.done = True
            pending.future.set_result([])
            return pending
        if timeout_s is not None:
            if timeout_s <= 0:
                self.stats.timeouts += 1
                raise DeadlineExceeded(_timeout_message(timeout_s))
            pending.timeout_s = timeout_s
            pending.deadline = now + timeout_s
            pending.timer = loop.call_at(pending.deadline, self._expire, pending)
        queue = self._queues[1 if priority == "batch" else 0]
        queue.extend(_Entry(pending, i, item) for i, item in enumerate(items))
        self._queued += n
        self._idle.clear()
        self._wakeup.set()
        return pending

    def _retry_after(self) -> float:
        batches = math.ceil(self._queued / self.config.max_batch_size) + 1
        return float(max(1, math.ceil(batches * self._ema_batch_s)))

    # --- completion ---------------------------------------------------------------------------

    def _expire(self, pending: Pending) -> None:
        if not pending.done:
            self.stats.timeouts += 1
            self._finish(pending, error=DeadlineExceeded(_timeout_message(pending.timeout_s)))

    def _finish(
        self, pending: Pending, *, error: MedserveError | None = None, cancelled: bool = False
    ) -> None:
        pending.done = True
        if pending.timer is not None:
            pending.timer.cancel()
        self._queued -= pending.queued
        pending.queued = 0
        elapsed = asyncio.get_running_loop().time() - pending.enqueued
        future = pending.future
        if future.done():
            return
        if cancelled:
            future.cancel()
        elif error is not None:
            self.stats.fail.add(elapsed)
            future.set_exception(error)
        else:
            self.stats.success.add(elapsed)
            future.set_result(pending.results)
        if self._queued == 0 and not self._busy:
            self._idle.set()

    # --- the scheduling loop -----------------------------------------------------------------

    def _oldest(self) -> _Entry | None:
        for queue in self._queues:
            while queue and queue[0].request.done:
                queue.popleft()
            if queue:
                return queue[0]
        return None

    def _take_batch(self) -> list[_Entry]:
        head = self._oldest()
        if head is None:
            return []
        key, limit = head.key, self.config.max_batch_size
        hint = self.adapter.batch_limit(key)
        if hint is not None:
            limit = max(1, min(limit, hint))
        batch: list[_Entry] = []
        for queue in self._queues:
            skipped: list[_Entry] = []
            while queue and len(batch) < limit:
                entry = queue.popleft()
                if entry.request.done:
                    continue
                if entry.key == key:
                    batch.append(entry)
                else:
                    skipped.append(entry)
            queue.extendleft(reversed(skipped))
        for entry in batch:
            entry.request.queued -= 1
        self._queued -= len(batch)
        return batch

    async def _fill(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait (at most the queue delay after the oldest item) while more work is arriving."""
        delay = self.config.max_queue_delay_ms / 1000.0
        head = self._oldest()
        if delay <= 0 or head is None:
            return
        until = head.request.enqueued + delay
        while self.incoming > 0 and self._queued < self.config.max_batch_size:
            remaining = until - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._queued == 0:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._fill(loop)
            batch = self._take_batch()
            if not batch:
                continue
            self._busy = True
            try:
                await self._execute(loop, batch)
            finally:
                self._busy = False

    async def _execute(self, loop: asyncio.AbstractEventLoop, batch: list[_Entry]) -> None:
        started = loop.time()
        for entry in batch:
            self.stats.queue.add(started - entry.request.enqueued)
        outcome = await self._predict(loop, batch)
        if isinstance(outcome, MedserveError) and len(batch) > 1:
            # Isolate the failure: each item alone, so one bad item fails only its request.
            for entry in batch:
                if not entry.request.done:
                    await self._execute(loop, [entry])
            return
        if isinstance(outcome, MedserveError):
            self._fail_batch(batch, outcome)
            return
        for entry, result in zip(batch, outcome, strict=True):
            pending = entry.request
            if pending.done:
                continue
            pending.results[entry.index] = result
            pending.remaining -= 1
            if pending.remaining == 0:
                self._finish(pending)

    async def _predict(
        self, loop: asyncio.AbstractEventLoop, batch: list[_Entry]
    ) -> list[Any] | MedserveError:
        """The adapter's results for `batch`, or the platform error its failure stands for."""
        items = [entry.item for entry in batch]
        self._in_flight = len(items)
        t0 = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self.adapter.predict, items)
            if len(results) != len(batch):
                raise RuntimeError(f"predict returned {len(results)} results for {len(batch)}")
            return list(results)
        except MedserveError as exc:
            return exc
        except Exception as exc:
            self.stats.errors += 1
            request_ids = sorted({entry.request.request_id for entry in batch})
            log.error(
                "predict failed",
                extra={"model": self.name, "error_type": type(exc).__name__,
                       "request_ids": request_ids, "batch_size": len(batch)},
            )  # fmt: skip
            return InternalError(
                f"model '{self.name}' failed on this input; the error was logged with the "
                "request id"
            )
        finally:
            self._in_flight = 0
            self._record_batch(len(batch), time.perf_counter() - t0)

    def _fail_batch(self, batch: list[_Entry], error: MedserveError) -> None:
        for pending in {id(e.request): e.request for e in batch}.values():
            if not pending.done:
                self._finish(pending, error=error)

    def _record_batch(self, size: int, seconds: float) -> None:
        stats = self.stats
        stats.execution_count += 1
        stats.inference_count += size
        stats.compute.add(seconds, size)
        stats.batch_sizes.setdefault(size, Counter()).add(seconds)
        stats.last_inference_ms = int(time.time() * 1000)
        self._ema_batch_s = (
            seconds if not self._ema_batch_s else 0.8 * self._ema_batch_s + 0.2 * seconds
        )

    # --- shutdown ----------------------------------------------------------------------------

    async def drain(self, timeout_s: float) -> bool:
        """Stop accepting, finish what is queued (up to `timeout_s`); True when all finished."""
        self._accepting = False
        self._wakeup.set()
        try:
            await asyncio.wait_for(self._wait_idle(), timeout_s)
            return True
        except TimeoutError:
            return False

    async def _wait_idle(self) -> None:
        while self._queued or self._busy:
            self._idle.clear()
            await self._idle.wait()

    async def close(self) -> None:
        self._accepting = False
        for queue in self._queues:
            for entry in queue:
                if not entry.request.done:
                    self._finish(
                        entry.request,
                        error=Unavailable(f"model '{self.name}' was stopped", retry_after=1),
                    )
            queue.clear()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self._executor.shutdown(wait=False)

    # --- reporting ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Triton-shaped statistics for this model, plus medserve's own counters."""
        return snapshot(self)


def _timeout_message(timeout_s: float | None) -> str:
    return (
        f"the request did not finish within its timeout of {timeout_s or 0:.3g} s; "
        "send a longer timeout or retry when the model is less busy"
    )
