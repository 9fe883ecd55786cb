"""Tiny SRRG models, built once per session in the released folder layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from model_store.manifest import Manifest
from workers.srrg import tiny

REPOS = {
    "findings": "StanfordAIMI/chexpert-plus-srrg_findings",
    "impression": "StanfordAIMI/chexpert-plus-srrg_impression",
    "leaves": "StanfordAIMI/SRR-BERT-Leaves",
    "upper": "StanfordAIMI/SRR-BERT-Upper",
    "leaves_with_statuses": "StanfordAIMI/SRR-BERT-Leaves-with-Statuses",
    "upper_with_statuses": "StanfordAIMI/SRRG-BERT-Upper-with-Statuses",
}


def manifest(key: str, **tiny_options: object) -> Manifest:
    return Manifest(
        name=f"srrg-{key}".replace("_", "-"),
        family="srrg",
        version="1",
        source={"repo_id": REPOS[key], "revision": "0" * 40},
        tiny=dict(tiny_options),
    )


@pytest.fixture(scope="session")
def srrg_tiny(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`srrg_tiny(key, **options)`: the folder of a tiny model (built on first use)."""
    import torch

    torch.set_num_threads(1)
    built: dict[tuple[str, tuple[tuple[str, object], ...]], Path] = {}
    root = tmp_path_factory.mktemp("srrg-tiny")

    def get(key: str, **options: object) -> Path:
        cache_key = (key, tuple(sorted(options.items())))
        if cache_key not in built:
            target = root / f"{key}-{len(built)}"
            tiny.build(manifest(key, **options), target, seed=7)
            built[cache_key] = target
        return built[cache_key]

    return get


@pytest.fixture(scope="session")
def srrg_adapter(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], object]:
    """`srrg_adapter(name)`: the loaded adapter of a shipped manifest on its tiny weights."""
    from model_store.store import ModelStore
    from workers.runtime.families import load_manifests
    from workers.runtime.registry import adapter_for, build_tiny

    store = ModelStore(tmp_path_factory.mktemp("srrg-store"), load_manifests())
    loaded: dict[str, object] = {}

    def get(name: str) -> object:
        if name not in loaded:
            adapter = adapter_for(store.manifest(name))
            adapter.load(build_tiny(store, name), "cpu")
            loaded[name] = adapter
        return loaded[name]

    return get
