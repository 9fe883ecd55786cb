"""The route table with replicas: a request a replica refuses, drops or declines goes to
another one, which answers it; the failed replica is ejected and probed back by discovery.
The peers are real HTTP servers on real sockets (tests.scripted_worker)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from core.errors import InvalidInput, Unavailable
from core.settings import GatewaySettings
from service.discovery import Discovery
from service.metrics import GatewayMetrics
from service.model_router import ModelRouter
from tests.scripted_worker import ScriptedWorker

X = {"INPUT0": np.array([[1.0, 2.0]], np.float32)}


@pytest.fixture
def peers() -> Iterator[tuple[ScriptedWorker, ScriptedWorker]]:
    a, b = ScriptedWorker().start(), ScriptedWorker().start()
    yield a, b
    a.stop()
    b.stop()


def table(*urls: str) -> ModelRouter:
    settings = GatewaySettings(routes={"echo": list(urls)}, health_interval_s=0.1)
    return ModelRouter(settings, metrics=GatewayMetrics())


def test_routes_take_a_list_of_urls_per_model() -> None:
    router = table("http://127.0.0.1:1/", "http://127.0.0.1:2", "http://127.0.0.1:1")
    assert [r.url for r in router.routes["echo"].replicas] == [
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
    ]
    single = ModelRouter(GatewaySettings(routes={"echo": "http://127.0.0.1:3"}))
    assert single.routes["echo"].url == "http://127.0.0.1:3"


@pytest.mark.parametrize("mode", ["drop", "draining"])
def test_a_dropped_or_declined_request_is_answered_by_the_other_replica(peers, mode) -> None:
    bad, good = peers
    bad.mode = mode
    router = table(bad.url, good.url)
    route = router.routes["echo"]

    async def main() -> list[str]:
        await Discovery(router).poll_once()
        assert all(r.ready for r in route.replicas)
        answers = [await router.infer("echo", X) for _ in range(6)]
        await router.close()
        return [a.parameters["replica"] for a in answers]

    assert set(asyncio.run(main())) == {good.url}
    failed = route.replica(bad.url)
    assert failed is not None and not failed.ready and failed.failures == 1
    assert route.ready and route.replica(good.url).requests == 6  # type: ignore[union-attr]
    metrics = router.metrics.render().decode()  # type: ignore[union-attr]
    assert 'medserve_upstream_retries_total{model="echo"} 1.0' in metrics
    assert f'medserve_replica_ready{{model="echo",replica="{bad.url}"}} 0.0' in metrics


def test_the_raw_forward_path_fails_over_too(peers) -> None:
    bad, good = peers
    bad.mode = "drop"
    router = table("http://127.0.0.1:1", bad.url, good.url)  # refused, dropped, answered

    async def main() -> tuple[int, bytes]:
        await Discovery(router).poll_once()
        router.set_state(router.routes["echo"], True, "READY", None)  # port 1 too, as if up
        for _ in range(8):  # until the refusing or dropping replica has been chosen first
            body = b'{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1,1],"data":[3]}]}'
            status, _, data = await router.forward(
                router.routes["echo"], "POST", "/v2/models/echo/infer", body,
                {b"content-type": b"application/json"}, "rid",
            )  # fmt: skip
            assert status == 200, data
        await router.close()
        return status, data

    _, data = asyncio.run(main())
    assert b"OUTPUT0" in data
    assert [r.url for r in router.routes["echo"].replicas if r.ready] == [good.url]


def test_an_error_every_replica_would_give_is_not_retried(peers) -> None:
    a, b = peers
    a.mode = b.mode = "invalid"
    router = table(a.url, b.url)

    async def main() -> None:
        await Discovery(router).poll_once()
        with pytest.raises(InvalidInput):
            await router.infer("echo", X)
        await router.close()

    asyncio.run(main())
    assert a.infers + b.infers == 1 and router.routes["echo"].ready


def test_when_every_replica_fails_the_last_error_is_raised(peers) -> None:
    a, b = peers
    a.mode = b.mode = "drop"
    router = table(a.url, b.url)

    async def main() -> None:
        await Discovery(router).poll_once()
        with pytest.raises(Unavailable):
            await router.infer("echo", X)
        first, last = sorted(router.routes["echo"].replicas, key=lambda r: r.ready)
        assert not first.ready and first.failures == last.failures == 1
        assert last.ready  # the last replica left is not ejected on a drop: the probe decides
        a.mode = b.mode = "ok"
        await Discovery(router).poll_once()  # the probe brings them back
        assert all(r.ready for r in router.routes["echo"].replicas)
        await router.close()

    asyncio.run(main())
    assert a.infers == 1 and b.infers == 1
