"""Offline, same-architecture, randomly initialised models for tests and the offline demo.

Each family has a builder module `model_store/builders/<family>.py` with
`build(manifest, target: Path, full_size: bool = False, seed: int = 0) -> None` that writes
files in the released layout (so the same loading code reads them). `full_size=True` writes
the real-size architecture with random weights, for benchmarks.
"""

from __future__ import annotations

import importlib
import shutil

from model_store.manifest import Manifest
from model_store.store import ModelStore, ResolvedModel, Weights, write_marker


def build_tiny(
    store: ModelStore, name: str, *, full_size: bool = False, force: bool = False, seed: int = 0
) -> ResolvedModel:
    manifest: Manifest = store.manifest(name)
    target = store.path(name)
    info = store.info(name)
    wanted: Weights = "random-full" if full_size else "random-tiny"
    if info is not None and not force and info["weights"] in ("pulled", wanted):
        return store.resolve(name)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    builder = importlib.import_module(f"model_store.builders.{manifest.family}")
    builder.build(manifest, target, full_size=full_size, seed=seed)
    write_marker(target, manifest, wanted, seed=seed)
    return store.resolve(name)
