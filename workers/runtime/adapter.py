"""The one interface every model family implements.

A worker process calls `load` once, then for each request: `preprocess` (CPU work, may raise
`InvalidInput`) turns the OIP request into items; the batcher gathers items from many requests
(only items with equal `batch_key` share a batch) and calls `predict` on a list; `postprocess`
turns that request's outputs back into OIP tensors. Adapters raise only `core.errors` types.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from model_store.manifest import Manifest
from model_store.store import ResolvedModel
from workers.runtime.oip import InferRequest, InferResponse


@dataclass
class TensorSpec:
    """OIP metadata for one input or output; -1 marks a variable dimension."""

    name: str
    datatype: str
    shape: list[int]
    optional: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


@dataclass
class Item:
    """One unit of batched work: what `predict` receives, one per output row."""

    data: Any
    key: Hashable = None
    meta: dict[str, Any] = field(default_factory=dict)


class ModelAdapter(ABC):
    """Base class for a served model. Nothing heavy happens in `__init__`."""

    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.resolved: ResolvedModel | None = None
        self.device = "cpu"

    @property
    def name(self) -> str:
        return self.manifest.name

    @abstractmethod
    def load(self, resolved: ResolvedModel, device: str) -> None:
        """Load weights from `resolved.path` onto `device`. Called once per process."""

    @abstractmethod
    def preprocess(self, request: InferRequest) -> list[Item]:
        """Validate and decode one request into one or more items (CPU work)."""

    @abstractmethod
    def predict(self, batch: list[Item]) -> list[Any]:
        """Run the model on a batch of items; one result per item, in order."""

    @abstractmethod
    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        """Turn this request's results into OIP output tensors."""

    def health(self) -> bool:
        return self.resolved is not None

    def unload(self) -> None:
        self.resolved = None

    def provenance(self) -> dict[str, Any]:
        """What every response carries: which weights served it."""
        resolved = self.resolved
        return {
            "model": self.manifest.name,
            "version": self.manifest.version,
            "weights": resolved.weights if resolved else "unloaded",
            "weights_digest": resolved.digest if resolved else None,
        }

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.manifest.name,
            "versions": [self.manifest.version],
            "platform": f"medserve_{self.manifest.family}",
            "inputs": [spec.to_json() for spec in self.inputs],
            "outputs": [spec.to_json() for spec in self.outputs],
            "parameters": {"family": self.manifest.family, **self.provenance()},
        }
