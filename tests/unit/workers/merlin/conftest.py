"""Tiny Merlin stores, built once per session by the family builder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.merlin_support import build_store


@pytest.fixture(scope="session")
def merlin_stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("merlin-store")
    return {kind: build_store(root, kind) for kind in ("clip", "five_year", "report")}
