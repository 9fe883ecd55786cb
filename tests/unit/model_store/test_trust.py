"""Store trust: unpinned revisions are refused, pulled files are locked, and a change is caught
by `verify` and before a worker loads the weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import WeightsUnavailable
from model_store.lock import LockFile, is_pinned
from model_store.store import ModelStore, tree_digest, write_marker
from workers.runtime.families import load_manifests

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path, load_manifests())


def test_a_moving_revision_is_refused_before_any_download(store: ModelStore) -> None:
    assert store.manifest("roentgen-v2").source.revision == "main"  # to be pinned on a hub machine
    with pytest.raises(WeightsUnavailable, match="40-character commit sha.*--allow-unpinned"):
        store.pull("roentgen-v2", endpoint_check=False)
    assert is_pinned(SHA) and not is_pinned("main") and not is_pinned("041f23d")


def fake_pull(store: ModelStore, name: str, content: bytes = b"weights") -> Path:
    """What a pull leaves behind (files, the lock entry, the marker), without a network."""
    target = store.path(name)
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(content)
    _, files = tree_digest(target)
    LockFile(store.root).record_or_check(name, "org/model", SHA, files)
    write_marker(target, store.manifest(name), "pulled", revision=SHA)
    return target


def test_the_lock_is_recorded_once_and_refuses_other_bytes_later(store: ModelStore) -> None:
    target = fake_pull(store, "echo")
    _, files = tree_digest(target)
    lock = LockFile(store.root)
    lock.record_or_check("echo", "org/model", SHA, files)  # the same bytes again: fine
    with pytest.raises(WeightsUnavailable, match="differ from the ones locked"):
        lock.record_or_check("echo", "org/model", SHA, {"model.safetensors": "0" * 64})
    assert store.resolve("echo").weights == "pulled" and store.verify("echo") == []


def test_a_changed_file_is_caught_by_verify_and_before_loading(store: ModelStore) -> None:
    target = fake_pull(store, "echo")
    (target / "model.safetensors").write_bytes(b"tampered weights")
    assert any("changed" in problem for problem in store.verify("echo"))
    with pytest.raises(WeightsUnavailable, match="changed on disk"):
        store.resolve("echo")


def test_pulled_weights_missing_from_the_lock_are_refused(store: ModelStore) -> None:
    fake_pull(store, "echo")
    LockFile(store.root).path.unlink()
    with pytest.raises(WeightsUnavailable, match="no entry in medserve.lock.json"):
        store.resolve("echo")
