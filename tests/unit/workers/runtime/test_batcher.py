"""The dynamic batcher on its own: batching, keys, priorities, bounds, deadlines, errors."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from core.errors import DeadlineExceeded, InternalError, InvalidInput, Overloaded, Unavailable
from model_store.manifest import Manifest
from model_store.store import ResolvedModel
from workers.runtime.adapter import Item, ModelAdapter
from workers.runtime.batcher import BatchConfig, Batcher
from workers.runtime.contract import Sample
from workers.runtime.oip import InferRequest, InferResponse


class Recorder(ModelAdapter):
    """Doubles each item; records every batch; can be held at a gate or made to fail."""

    def __init__(self) -> None:
        super().__init__(Manifest(name="rec", family="builtin", version="1"))
        self.batches: list[list[Any]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.fail_on: Any = None

    def load(self, resolved: ResolvedModel, device: str) -> None:  # pragma: no cover
        pass

    def decode(self, request: InferRequest, params: Any) -> list[Sample]:  # pragma: no cover
        return []

    def prepare(self, samples: list[Sample], params: Any, request: InferRequest) -> list[Item]:
        return []  # pragma: no cover

    def predict(self, batch: list[Item]) -> list[Any]:
        self.started.set()
        self.gate.wait(5)
        values = [item.data for item in batch]
        self.batches.append(values)
        if self.fail_on is not None and self.fail_on in values:
            if isinstance(self.fail_on, str):
                raise InvalidInput("the adapter refused this value")
            raise ValueError("boom: secret patient data")
        return [v * 2 for v in values]

    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        raise NotImplementedError  # pragma: no cover


def items(*values: Any, key: Any = None) -> list[Item]:
    return [Item(v, key=key) for v in values]


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


async def _held(adapter: Recorder, batcher: Batcher) -> None:
    """Occupy the executor with one batch held at the gate."""
    adapter.gate.clear()
    adapter.started.clear()
    batcher.submit(items(-1), request_id="blocker")
    while not adapter.started.is_set():
        await asyncio.sleep(0.001)


def test_concurrent_requests_share_batches_and_get_their_own_results() -> None:
    adapter = Recorder()

    async def main() -> None:
        batcher = Batcher(adapter, BatchConfig(max_batch_size=4, max_queue_delay_ms=0))
        batcher.start()
        await _held(adapter, batcher)
        pendings = [batcher.submit(items(10 * i, 10 * i + 1)) for i in range(5)]
        adapter.gate.set()
        results = await asyncio.gather(*(p.future for p in pendings))
        assert results == [[20 * i, 20 * i + 2] for i in range(5)]
        # blocker alone, then 10 items in batches of at most 4, oldest first
        assert [len(b) for b in adapter.batches] == [1, 4, 4, 2]
        snap = batcher.snapshot()
        assert snap["inference_count"] == 11 and snap["execution_count"] == 4
        assert {b["batch_size"] for b in snap["batch_stats"]} == {1, 2, 4}
        await batcher.close()

    run(main())


def test_items_with_different_keys_never_share_a_batch() -> None:
    adapter = Recorder()

    async def main() -> None:
        batcher = Batcher(adapter, BatchConfig(max_batch_size=8, max_queue_delay_ms=0))
        batcher.start()
        await _held(adapter, batcher)
        a = batcher.submit(items(1, 2, key="a"))
        b = batcher.submit(items(100, key="b"))
        c = batcher.submit(items(3, key="a"))
        adapter.gate.set()
        assert await a.future == [2, 4]
        assert await b.future == [200]
        assert await c.future == [6]
        # after the blocker: all "a" items (oldest key) together, then "b"
        assert adapter.batches[1:] == [[1, 2, 3], [100]]
        await batcher.close()

    run(main())


def test_the_adapters_batch_limit_bounds_batches_per_key() -> None:
    """A family's memory-derived limit (RoentGen-v2 on a GPU) caps batches below max_batch_size."""
    adapter = Recorder()
    adapter.batch_limit = lambda key: 2 if key == "big" else None  # type: ignore[method-assign]

    async def main() -> None:
        batcher = Batcher(adapter, BatchConfig(max_batch_size=8, max_queue_delay_ms=0))
        batcher.start()
        await _held(adapter, batcher)
        big = batcher.submit(items(1, 2, 3, 4, 5, key="big"))
        small = batcher.submit(items(6, 7, 8, key="small"))
        adapter.gate.set()
        assert await big.future == [2, 4, 6, 8, 10]
        assert await small.future == [12, 14, 16]
        assert adapter.batches[1:] == [[1, 2], [3, 4], [5], [6, 7, 8]]
        await batcher.close()

    run(main())


def test_interactive_items_run_before_older_batch_items() -> None:
    adapter = Recorder()

    async def main() -> None:
        batcher = Batcher(adapter, BatchConfig(max_batch_size=1, max_queue_delay_ms=0))
        batcher.start()
        await _held(adapter, batcher)
        jobs = [batcher.submit(items(i), priority="batch") for i in range(3)]
        urgent = batcher.submit(items(99), priority="interactive")
        adapter.gate.set()
        await asyncio.gather(urgent.future, *(j.future for j in jobs))
        assert [b[0] for b in adapter.batches] == [-1, 99, 0, 1, 2]
        await batcher.close()

    run(main())


def test_full_queue_refuses_with_retry_after_and_recovers() -> None:
    adapter = Recorder()

    async def main() -> None:
        batcher = Batcher(adapter, BatchConfig(max_batch_size=2, max_queue_size=3))
        batcher.start()
        await _held(adapter, batcher)
        first = batcher.submit(items(1, 2))
        with pytest.raises(Overloaded) as info:
            batcher.submit(items(3, 4))
        assert info.value.retry_after is not None and info.value.retry_after >= 1
        with pytest.raises(InvalidInput, match="split it"):
            batcher.submit(items(*range(4)))
        adapter.gate.set()
        assert await first.future == [2, 4]
        assert await batcher.submit(items(3, 4)).future == [6, 8]
        assert batcher.snapshot()["rejected"] == 1
        await batcher.close()

    run(main())


def test_expired_request_fails_with_deadline_and_never_runs() -> None:
    adapter = Recorder()

    async def main() -> None:
        batcher = Batcher(adapter, BatchConfig(max_batch_size=4, max_queue_delay_ms=0))
        batcher.start()
        await _held(adapter, batcher)
        late = batcher.submit(items(5), timeout_s=0.05)
        with pytest.raises(DeadlineExceeded, match="timeout"):
            await late.future
        assert batcher.queue_depth == 0
        adapter.gate.set()
        assert await batcher.submit(items(6)).future == [12]
        assert [5] not in adapter.batches
        assert batcher.snapshot()["timeouts"] == 1
        await batcher.close()

    run(main())


def test_cancelled_request_is_dropped_from_the_queue() -> None:
    adapter = Recorder()

    async def main() -> None:
        batcher = Batcher(adapter, BatchConfig(max_batch_size=4, max_queue_delay_ms=0))
        batcher.start()
        await _held(adapter, batcher)
        gone = batcher.submit(items(7, 8))
        kept = batcher.submit(items(9))
        gone.cancel()
        assert batcher.queue_depth == 1
        adapter.gate.set()
        assert await kept.future == [18]
        assert all(7 not in b and 8 not in b for b in adapter.batches)
        assert batcher.snapshot()["cancelled"] == 1
        await batcher.close()

    run(main())


def test_predict_errors_fail_only_that_batch_with_a_safe_message() -> None:
    adapter = Recorder()

    async def main() -> None:
        batcher = Batcher(adapter, BatchConfig(max_batch_size=4, max_queue_delay_ms=0))
        batcher.start()
        adapter.fail_on = 13
        with pytest.raises(InternalError) as info:
            await batcher.submit(items(13)).future
        assert "secret" not in info.value.message and "boom" not in info.value.message
        adapter.fail_on = "bad"
        with pytest.raises(InvalidInput, match="refused"):
            await batcher.submit(items("bad")).future
        adapter.fail_on = None
        assert await batcher.submit(items(1)).future == [2]
        assert batcher.snapshot()["errors"] == 1
        await batcher.close()

    run(main())


def test_a_failing_item_fails_only_its_own_request_in_a_shared_batch() -> None:
    adapter = Recorder()

    async def main() -> None:
        batcher = Batcher(adapter, BatchConfig(max_batch_size=8, max_queue_delay_ms=0))
        batcher.start()
        await _held(adapter, batcher)
        adapter.fail_on = 13
        good = batcher.submit(items(1, 2))
        bad = batcher.submit(items(13))
        other = batcher.submit(items(3))
        adapter.gate.set()
        assert await good.future == [2, 4]
        assert await other.future == [6]
        with pytest.raises(InternalError):
            await bad.future
        assert [1, 2, 13, 3] in adapter.batches  # tried together once, then one by one
        assert [13] in adapter.batches and [3] in adapter.batches
        await batcher.close()

    run(main())


def test_queue_delay_waits_for_arriving_requests_and_not_for_a_lone_one() -> None:
    adapter = Recorder()

    async def main() -> None:
        batcher = Batcher(adapter, BatchConfig(max_batch_size=8, max_queue_delay_ms=200))
        batcher.start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await batcher.submit(items(1)).future == [2]
        assert loop.time() - t0 < 0.15  # nothing else arriving: no delay
        batcher.begin_arrival()  # a second request is being decoded
        first = batcher.submit(items(2))
        await asyncio.sleep(0.02)
        second = batcher.submit(items(3))
        batcher.end_arrival()
        assert await asyncio.gather(first.future, second.future) == [[4], [6]]
        assert adapter.batches[-1] == [2, 3]
        await batcher.close()

    run(main())


def test_drain_finishes_queued_work_then_refuses() -> None:
    adapter = Recorder()

    async def main() -> None:
        batcher = Batcher(adapter, BatchConfig(max_batch_size=1, max_queue_delay_ms=0))
        batcher.start()
        await _held(adapter, batcher)
        queued = [batcher.submit(items(i)) for i in range(3)]
        drained = asyncio.ensure_future(batcher.drain(5))
        await asyncio.sleep(0.01)
        with pytest.raises(Unavailable):
            batcher.submit(items(9))
        adapter.gate.set()
        assert await drained is True
        assert [await q.future for q in queued] == [[0], [2], [4]]
        await batcher.close()

    run(main())
