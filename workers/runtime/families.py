"""The families this install knows, and manifests validated against their contracts.

Torch-free (the gateway uses it): each family's `contract` module declares `Params` (the
manifest's `defaults` must parse as them), `Options` (its `adapter` block) and optionally
`Tiny` (its `tiny` block), so an unknown or misspelt key in any manifest is an error when the
manifests are loaded, naming the closest valid key.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from pydantic import BaseModel, ValidationError

from core.errors import InvalidInput, ModelNotFound
from core.validation import describe
from model_store.manifest import MANIFEST_DIR, Manifest
from model_store.manifest import load_manifests as load_raw

# A new family is one line here (and one package under workers/).
FAMILIES = (
    "builtin",
    "roentgen",
    "medvae",
    "medval",
    "srrg",
    "merlin",
    "green",
    "cxr_demographics",
)


def contract(family: str) -> ModuleType:
    """The torch-free contract module of a family."""
    if family not in FAMILIES:
        raise ModelNotFound(f"unknown model family '{family}'; known: {', '.join(FAMILIES)}")
    return importlib.import_module(f"workers.{family}.contract")


def _check(manifest: Manifest, block: str, schema: type[BaseModel] | None, data: dict) -> None:
    if schema is None:
        if data:
            raise InvalidInput(f"manifest '{manifest.name}': family {manifest.family} has no "
                               f"'{block}' options")  # fmt: skip
        return
    try:
        schema.model_validate(data)
    except ValidationError as exc:
        what = {"adapter": "adapter option", "tiny": "tiny option"}.get(block, "default")
        raise InvalidInput(
            f"manifest '{manifest.name}': {describe(exc, schema, what=what)}"
        ) from None


def validate(manifest: Manifest) -> Manifest:
    """Check the family-specific blocks of one manifest (raises InvalidInput)."""
    module = contract(manifest.family)
    _check(manifest, "adapter", getattr(module, "Options", None), manifest.adapter)
    _check(manifest, "defaults", getattr(module, "Params", None), manifest.defaults)
    _check(manifest, "tiny", getattr(module, "Tiny", None), manifest.tiny)
    return manifest


def load_manifests(directory: Path = MANIFEST_DIR) -> dict[str, Manifest]:
    """Every manifest in `directory`, each validated against its family's contract."""
    return {name: validate(m) for name, m in load_raw(directory).items()}
