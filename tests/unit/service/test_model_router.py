"""The gateway's route table and discovery's bookkeeping, without a network."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from core.errors import DeadlineExceeded, InvalidInput, ModelNotFound, ModelNotReady, Unreachable
from core.settings import GatewaySettings
from service.discovery import TIMEOUTS_BEFORE_DOWN, Discovery
from service.metrics import GatewayMetrics
from service.model_router import ModelRouter


def router(**settings: object) -> ModelRouter:
    base = {"routes": {"echo": "http://127.0.0.1:1/", "medvae-4-1-2d": "http://127.0.0.1:2"}}
    return ModelRouter(GatewaySettings(**{**base, **settings}), metrics=GatewayMetrics())


def test_routes_come_from_settings_with_clean_urls() -> None:
    table = router()
    assert table.routes["echo"].url == "http://127.0.0.1:1"
    assert table.served() == "echo, medvae-4-1-2d"
    assert table.client("http://127.0.0.1:1") is table.client("http://127.0.0.1:1")


def test_route_refuses_unknown_and_not_ready_models_with_how_to_retry() -> None:
    table = router(health_interval_s=2.5)
    with pytest.raises(ModelNotFound, match="served models: echo, medvae-4-1-2d"):
        table.route("nope")
    with pytest.raises(ModelNotReady) as caught:
        table.route("echo")
    assert caught.value.retry_after == 3
    table.set_state(table.routes["echo"], True, "READY", None)
    assert table.route("echo").ready and table.is_ready("echo")


def test_family_routes_refuse_a_model_of_another_family() -> None:
    table = router()
    assert table.manifest("medvae-4-1-2d", family="medvae").family == "medvae"
    with pytest.raises(InvalidInput, match="is a medvae model, not roentgen; use one of"):
        table.manifest("medvae-4-1-2d", family="roentgen")
    with pytest.raises(ModelNotFound):
        table.manifest("nope")


def test_a_refused_connection_marks_the_worker_down_at_once() -> None:
    table = router()
    route = table.routes["echo"]
    table.set_state(route, True, "READY", None)

    async def main() -> None:
        with pytest.raises(Unreachable):  # nothing listens on port 1
            await table.infer("echo", {"INPUT0": np.zeros((1, 2), np.float32)})
        await table.close()

    asyncio.run(main())
    assert not route.ready and route.reason == "worker unreachable"
    assert route.replicas[0].failures == 1 and route.replicas[0].ejections == 1


def test_a_slow_probe_marks_down_only_after_repeated_timeouts() -> None:
    table = router()
    discovery = Discovery(table)
    route = table.routes["echo"]
    replica = route.replicas[0]
    table.set_state(route, True, "READY", None)
    for _ in range(TIMEOUTS_BEFORE_DOWN - 1):
        discovery._fail(route, replica, DeadlineExceeded("slow"))
        assert route.ready
    discovery._fail(route, replica, DeadlineExceeded("slow"))
    assert not route.ready and "health check" in str(route.reason)


def test_nothing_listening_makes_every_model_not_ready() -> None:
    table = router()

    async def main() -> None:
        discovery = Discovery(table)
        await discovery.poll_once()
        assert not discovery.all_ready()
        assert {r.reason for r in table.routes.values()} == {"worker unreachable"}
        await table.close()

    asyncio.run(main())
