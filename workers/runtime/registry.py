"""How a worker builds a family's adapter and tiny builder (families: `runtime.families`).

Each family package `workers.<family>` names its parts in its `__init__.py` (`ADAPTER`,
`TINY`, `CONTRACT` as "module:attribute" strings), so nothing heavy is imported until a model of
that family is built or loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

from core.errors import ModelNotFound
from model_store.manifest import Manifest
from model_store.store import ModelStore, ResolvedModel
from model_store.tiny import build_tiny as _build_tiny
from workers.runtime.adapter import ModelAdapter
from workers.runtime.families import FAMILIES

__all__ = ["FAMILIES", "adapter_for", "build_tiny", "tiny_builder"]


def _family(name: str) -> Any:
    if name not in FAMILIES:
        raise ModelNotFound(f"unknown model family '{name}'; known: {', '.join(FAMILIES)}")
    return importlib.import_module(f"workers.{name}")


def _load(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def adapter_for(manifest: Manifest) -> ModelAdapter:
    """A new (unloaded) adapter for `manifest`."""
    cls = _load(_family(manifest.family).ADAPTER)
    adapter: ModelAdapter = cls(manifest)
    return adapter


def tiny_builder(family: str) -> Any:
    """The family's `build(manifest, target, full_size=, seed=)` function."""
    return _load(_family(family).TINY)


def build_tiny(
    store: ModelStore, name: str, *, full_size: bool = False, force: bool = False, seed: int = 0
) -> ResolvedModel:
    """Build a random same-architecture copy of `name` in `store` (see model_store.tiny)."""
    builder = tiny_builder(store.manifest(name).family)
    return _build_tiny(store, name, builder, full_size=full_size, force=force, seed=seed)
