"""Family -> adapter class. A new family is one line here (imported lazily: no torch at import)."""

from __future__ import annotations

import importlib

from model_store.manifest import Manifest
from workers.adapter import ModelAdapter

ADAPTERS: dict[str, str] = {
    "builtin": "workers.adapters.builtin:EchoAdapter",
    "roentgen": "workers.adapters.roentgen:RoentgenAdapter",
    "medvae": "workers.adapters.medvae:MedVAEAdapter",
    "medval": "workers.adapters.medval:MedVALAdapter",
}


def adapter_for(manifest: Manifest) -> ModelAdapter:
    target = manifest.adapter.get("class") or ADAPTERS[manifest.family]
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    adapter: ModelAdapter = cls(manifest)
    return adapter
