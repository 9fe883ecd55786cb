"""Worker pods found by DNS: a `dns+http://` entry stands for every address its name resolves
to (a headless Service's A records), re-resolved on each poll. The resolver is a plain
function passed in; the workers behind the addresses are real HTTP servers on 127.0.0.x."""

from __future__ import annotations

import asyncio

import pytest

from core.net import free_port
from core.settings import GatewaySettings
from service.discovery import Discovery
from service.model_router import ModelRouter
from tests.scripted_worker import ScriptedWorker


@pytest.fixture
def pods():
    port = free_port()
    started = [ScriptedWorker(f"127.0.0.{i}", port).start() for i in (2, 3, 4)]
    yield port, started
    for pod in started:
        pod.stop()


def test_each_address_of_a_headless_service_is_a_replica_and_pods_come_and_go(pods) -> None:
    port, (a, b, c) = pods
    records = {"workers.ns.svc": ["127.0.0.2", "127.0.0.3"]}
    settings = GatewaySettings(worker_urls=f"dns+http://workers.ns.svc:{port}")
    router = ModelRouter(settings)
    discovery = Discovery(router, resolve=lambda host: list(records.get(host, [])))

    def replicas() -> list[str]:
        return sorted(r.url for r in router.routes["echo"].replicas)

    async def main() -> None:
        await discovery.poll_once()
        assert replicas() == [a.url, b.url] and discovery.all_ready()
        records["workers.ns.svc"] = ["127.0.0.3", "127.0.0.4"]  # a rolled, c scheduled
        await discovery.poll_once()
        assert replicas() == [b.url, c.url]
        records["workers.ns.svc"] = []  # a DNS blip: keep what we had
        await discovery.poll_once()
        assert replicas() == [b.url, c.url] and router.routes["echo"].ready
        c.stop()  # c dies but is still in DNS: not ready, the model still is (b)
        await discovery.poll_once()
        state = {r.url: r.ready for r in router.routes["echo"].replicas}
        assert state == {b.url: True, c.url: False} and discovery.all_ready()
        await router.close()

    asyncio.run(main())


def test_a_service_that_never_resolved_keeps_the_gateway_not_ready(pods) -> None:
    port, _ = pods
    settings = GatewaySettings(worker_urls=f"dns+http://nowhere.invalid:{port}")
    router = ModelRouter(settings)
    discovery = Discovery(router, resolve=lambda host: [])

    async def main() -> None:
        await discovery.poll_once()
        assert not discovery.all_ready() and router.routes == {}
        await router.close()

    asyncio.run(main())
