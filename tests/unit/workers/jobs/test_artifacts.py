"""Artifact store on fsspec (memory:// here; a folder in integration tests) and the frozen plan."""

from __future__ import annotations

import uuid

import pytest

from core.errors import InvalidInput, NotFound
from workers.jobs.artifacts import ArtifactStore, safe_relpath
from workers.jobs.shards import load_or_create_plan


@pytest.fixture
def store() -> ArtifactStore:
    return ArtifactStore(f"memory://jobs-test/{uuid.uuid4().hex}")


def test_write_read_list_hides_bookkeeping(store: ArtifactStore) -> None:
    store.write_text("images/0000/000001.png", "b")
    store.write_text("images/0000/000000.png", "a")
    store.write_text(".shards/metadata-00000.jsonl", "{}\n")
    assert store.read_bytes("images/0000/000000.png") == b"a"
    assert [a["path"] for a in store.list()] == ["images/0000/000000.png", "images/0000/000001.png"]
    assert ".shards/metadata-00000.jsonl" in [a["path"] for a in store.list(hidden=True)]
    assert not any(".tmp-" in a["path"] for a in store.list(hidden=True))  # temp names renamed away
    store.delete("images/0000/000001.png")
    assert not store.exists("images/0000/000001.png")
    with pytest.raises(NotFound):
        store.read_bytes("nope.txt")


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../x", "a/../../b", "a//b", "./a"])
def test_paths_stay_inside_the_job_folder(bad: str) -> None:
    with pytest.raises(InvalidInput):
        safe_relpath(bad)


def test_plan_is_frozen_at_first_attempt(store: ArtifactStore) -> None:
    first = load_or_create_plan(store, lambda: [{"i": i} for i in range(10)], shard_size=4)
    assert first.shard_count == 3 and first.shard_items(2) == [{"i": 8}, {"i": 9}]
    # a resumed attempt with other settings and another item list still sees the first plan
    again = load_or_create_plan(store, lambda: [{"i": 0}], shard_size=100)
    assert again == first
    assert again.pending({0, 2}) == [1]
