"""Servers freeze their start-up heap so that collections skip it."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from core.heap import settle_heap
from core.settings import GatewaySettings
from service.app import create_app


def test_settle_heap_freezes_what_is_alive_and_leaves_new_objects_collectable() -> None:
    gc.unfreeze()
    try:
        alive = [object() for _ in range(1000)]
        settle_heap()
        frozen = gc.get_freeze_count()
        assert frozen >= len(alive)
        cycle: list = []
        cycle.append(cycle)
        assert gc.is_tracked(cycle) and gc.get_freeze_count() == frozen  # new: not frozen
    finally:
        gc.unfreeze()


def test_the_gateway_settles_its_heap_at_start_up(tmp_path) -> None:
    gc.unfreeze()
    try:
        app = create_app(GatewaySettings(home=str(tmp_path), routes={}))
        assert gc.get_freeze_count() == 0
        with TestClient(app):
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
