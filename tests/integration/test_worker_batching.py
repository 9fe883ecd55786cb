"""Dynamic batching in a real worker process: batches, queue bound, timeouts, priority,
client disconnects. The echo model's `delay_ms` parameter holds the executor busy."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from core.errors import DeadlineExceeded, Overloaded
from tests.harness import WorkerProcess
from workers.runtime.client import OIPClient, SyncOIPClient

BLOCK_MS = 2500  # how long a blocking request holds the executor: long enough for a busy CI


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def worker(model_dir: Path) -> Iterator[WorkerProcess]:
    """The echo manifest's batching: up to 32 items, 2 ms queue delay."""
    with WorkerProcess(["echo"], model_dir) as proc:
        yield proc


@pytest.fixture(scope="module")
def narrow(model_dir: Path) -> Iterator[WorkerProcess]:
    """One item per batch and a queue of four: every queued request is observable."""
    env = {"MEDSERVE_MAX_BATCH_SIZE": "1", "MEDSERVE_MAX_QUEUE_SIZE": "4"}
    with WorkerProcess(["echo"], model_dir, env) as proc:
        yield proc


def _stats(url: str) -> dict[str, Any]:
    return httpx.get(url + "/v2/models/echo/stats").json()["model_stats"][0]


async def _queued(url: str, depth: int) -> None:
    """Wait until a batch is running and `depth` items are queued behind it."""
    async with httpx.AsyncClient() as client:
        for _ in range(500):
            stats = (await client.get(url + "/v2/models/echo/stats")).json()["model_stats"][0]
            if stats["in_flight"] and stats["queue_depth"] >= depth:
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"queue never reached {depth}")


def _rows(i: int) -> np.ndarray:
    n = 1 + i % 3
    return (np.arange(n * 4, dtype=np.float32).reshape(n, 4) + 100 * i).astype(np.float32)


def test_concurrent_requests_share_forward_passes_and_match_unbatched_results(
    worker: WorkerProcess,
) -> None:
    inputs = [_rows(i) for i in range(32)]
    with SyncOIPClient(worker.url) as sync:
        alone = [sync.infer("echo", {"INPUT0": x}) for x in inputs]
    for x, result in zip(inputs, alone, strict=True):
        assert json.loads(result.parameters["batch_sizes"]) == [len(x)] * len(x)
    before = _stats(worker.url)

    async def burst() -> list[Any]:
        async with OIPClient(worker.url) as client:
            calls = [client.infer("echo", {"INPUT0": x}, {"delay_ms": 20}) for x in inputs]
            return await asyncio.gather(*calls)

    together = asyncio.run(burst())
    after = _stats(worker.url)
    items = sum(len(x) for x in inputs)
    passes = after["execution_count"] - before["execution_count"]
    assert after["inference_count"] - before["inference_count"] == items
    assert passes < len(inputs), f"{passes} forward passes for {len(inputs)} requests"
    sizes = [max(json.loads(r.parameters["batch_sizes"])) for r in together]
    assert max(sizes) > 1
    for single, batched in zip(alone, together, strict=True):
        np.testing.assert_array_equal(batched.outputs["OUTPUT0"], single.outputs["OUTPUT0"])


def test_full_queue_answers_503_with_retry_after_and_recovers(narrow: WorkerProcess) -> None:
    x = np.ones((1, 2), np.float32)

    async def main() -> None:
        async with OIPClient(narrow.url) as client:
            blocker = asyncio.ensure_future(
                client.infer("echo", {"INPUT0": x}, {"delay_ms": BLOCK_MS})
            )
            await _queued(narrow.url, 0)
            queued = [asyncio.ensure_future(client.infer("echo", {"INPUT0": x})) for _ in range(4)]
            await _queued(narrow.url, 4)
            with pytest.raises(Overloaded, match="queued") as info:
                await client.infer("echo", {"INPUT0": x})
            # rebuilt from the 503's X-Medserve-Error-Code and Retry-After headers
            assert info.value.retry_after is not None and info.value.retry_after >= 1
            status, headers, _ = await client.request(
                "POST", "/v2/models/echo/infer", _json_body(x)[0], {}
            )
            assert status == 503 and int(headers["retry-after"]) >= 1
            await asyncio.gather(blocker, *queued)
            after = await client.infer("echo", {"INPUT0": x})
            np.testing.assert_array_equal(after.outputs["OUTPUT0"], x)

    asyncio.run(main())
    assert _stats(narrow.url)["rejected"] >= 2


def _json_body(x: np.ndarray) -> tuple[bytes, None]:
    doc = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": list(x.shape),
                       "data": x.reshape(-1).tolist()}]}  # fmt: skip
    return orjson.dumps(doc), None


def test_request_past_its_timeout_is_504_and_the_next_one_works(narrow: WorkerProcess) -> None:
    x = np.ones((1, 2), np.float32)

    async def main() -> None:
        async with OIPClient(narrow.url) as client:
            blocker = asyncio.ensure_future(
                client.infer("echo", {"INPUT0": x}, {"delay_ms": BLOCK_MS})
            )
            await _queued(narrow.url, 0)
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded, match="timeout"):
                await client.infer("echo", {"INPUT0": x}, timeout_s=0.1)
            # answered at its deadline, not when the running batch finished
            assert time.monotonic() - started < BLOCK_MS / 1000 - 0.3
            # tritonclient's `timeout` parameter (microseconds) works the same way
            triton = triton_http.InferenceServerClient(narrow.url.removeprefix("http://"))
            inp = triton_http.InferInput("INPUT0", [1, 2], "FP32")
            inp.set_data_from_numpy(x)
            with pytest.raises(InferenceServerException) as info:
                await asyncio.to_thread(triton.infer, "echo", [inp], timeout=100_000)
            assert info.value.status() == "504"
            await blocker
            ok = await client.infer("echo", {"INPUT0": x}, timeout_s=5)
            np.testing.assert_array_equal(ok.outputs["OUTPUT0"], x)

    asyncio.run(main())


def test_batch_priority_waits_behind_interactive(narrow: WorkerProcess) -> None:
    x = np.ones((1, 2), np.float32)
    done: list[str] = []

    async def call(client: OIPClient, name: str, priority: str) -> None:
        await client.infer("echo", {"INPUT0": x}, {"delay_ms": 30}, priority=priority)
        done.append(name)

    async def main() -> None:
        async with OIPClient(narrow.url) as client:
            blocker = asyncio.ensure_future(
                client.infer("echo", {"INPUT0": x}, {"delay_ms": BLOCK_MS})
            )
            await _queued(narrow.url, 0)
            jobs = [asyncio.ensure_future(call(client, f"job{i}", "batch")) for i in range(3)]
            await _queued(narrow.url, 3)
            urgent = asyncio.ensure_future(call(client, "interactive", "interactive"))
            await asyncio.gather(blocker, urgent, *jobs)

    asyncio.run(main())
    assert done[0] == "interactive", done
    assert sorted(done[1:]) == ["job0", "job1", "job2"]


def test_client_disconnect_drops_its_queued_work(narrow: WorkerProcess) -> None:
    x = np.ones((1, 2), np.float32)
    before = _stats(narrow.url)

    async def main() -> None:
        async with OIPClient(narrow.url) as client:
            blocker = asyncio.ensure_future(
                client.infer("echo", {"INPUT0": x}, {"delay_ms": BLOCK_MS})
            )
            await _queued(narrow.url, 0)
            body, _ = _json_body(np.full((3, 2), 7, np.float32))
            with socket.create_connection(("127.0.0.1", narrow.port)) as sock:
                sock.sendall(
                    b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await _queued(narrow.url, 3)
            await blocker
            await asyncio.sleep(0.1)

    asyncio.run(main())
    after = _stats(narrow.url)
    assert after["cancelled"] - before["cancelled"] == 1
    assert after["inference_count"] - before["inference_count"] == 1  # only the blocker ran
    assert after["queue_depth"] == 0
