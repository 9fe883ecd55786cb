"""Tiny demographic classifiers, built once per session in the released file formats."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_store.store import ModelStore, ResolvedModel
from tests.qc_support import plant
from workers.runtime.families import load_manifests
from workers.runtime.oip import InferRequest
from workers.runtime.registry import adapter_for, build_tiny


@pytest.fixture(scope="session")
def cxr_store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    import torch

    torch.set_num_threads(1)
    return ModelStore(tmp_path_factory.mktemp("cxr-demographics"), load_manifests())


@pytest.fixture(scope="session")
def cxr_adapter(cxr_store: ModelStore) -> Callable[..., Any]:
    """`cxr_adapter(name, head_bias=None)`: a loaded adapter on a tiny (or planted) model."""
    loaded: dict[tuple[str, Any], Any] = {}

    def get(name: str, head_bias: list[float] | None = None) -> Any:
        key = (name, tuple(head_bias) if head_bias else None)
        if key not in loaded:
            if head_bias is None:
                resolved = build_tiny(cxr_store, name, force=True)
            else:
                folder = cxr_store.root / f"planted-{len(loaded)}"
                resolved = plant(folder, name, head_bias)
            adapter = adapter_for(cxr_store.manifest(name))
            adapter.load(resolved, "cpu")
            loaded[key] = adapter
        return loaded[key]

    return get


def run(adapter: Any, files: list[bytes]) -> Any:
    """One request through preprocess, predict and postprocess, as the worker runs it."""
    request = InferRequest(inputs={"IMAGE": np.array(files, dtype=np.object_)}, parameters={})
    items = adapter.preprocess(request)
    return adapter.postprocess(request, adapter.predict(items))


def folder_of(resolved: ResolvedModel) -> Path:
    return resolved.path
