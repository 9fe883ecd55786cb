"""Offline, same-architecture, randomly initialised models for tests and the offline demo.

Each family's `tiny.py` has `build(manifest, target: Path, full_size: bool = False, seed: int = 0)`
writing files in the released layout, so the same loading code reads them; `full_size=True`
writes the real-size architecture with random weights, for benchmarks. The builder is passed
in (the worker registry knows the families); this module only lays out the folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from model_store.manifest import Manifest
from model_store.store import ModelStore, ResolvedModel, Weights, write_marker

Builder = Callable[..., None]


def build_tiny(
    store: ModelStore,
    name: str,
    builder: Builder,
    *,
    full_size: bool = False,
    force: bool = False,
    seed: int = 0,
) -> ResolvedModel:
    """Build `name` with `builder(manifest, target, full_size=, seed=)` unless it is present."""
    manifest: Manifest = store.manifest(name)
    target: Path = store.path(name)
    info = store.info(name)
    wanted: Weights = "random-full" if full_size else "random-tiny"
    if info is not None and not force and info["weights"] in ("pulled", wanted):
        return store.resolve(name)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    builder(manifest, target, full_size=full_size, seed=seed)
    write_marker(target, manifest, wanted, seed=seed)
    return store.resolve(name)
