"""The one interface every model family implements.

A worker calls `load` once, then for each request `preprocess` (CPU work): the base class
checks the request against the manifest's input contract, parses the family's `Params`,
lets the family `decode` its inputs into samples, checks each sample, and hands them to the
family's `prepare`, which returns batcher items. The batcher calls `predict` on a list of items
(only equal `key`s share a batch); `postprocess` turns one request's results into OIP tensors,
the final labelled artifact every caller receives. Adapters raise only `core.errors` types.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import InvalidInput
from core.validation import describe
from model_store.manifest import Manifest
from model_store.store import ResolvedModel
from workers.runtime.contract import InputCheck, Sample
from workers.runtime.oip import InferRequest, InferResponse
from workers.runtime.params import OIPParams
from workers.runtime.spec import TensorSpec


class NoOptions(BaseModel):
    """A family whose manifest has no `adapter` block."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class Item:
    """One unit of batched work: what `predict` receives, one per output row."""

    data: Any
    key: Hashable = None
    meta: dict[str, Any] = field(default_factory=dict)


def options_for(manifest: Manifest, schema: type[BaseModel]) -> Any:
    """The manifest's `adapter` block as the family's typed options (unknown keys refused)."""
    try:
        return schema.model_validate(manifest.adapter)
    except ValidationError as exc:
        raise InvalidInput(
            f"manifest '{manifest.name}': {describe(exc, schema, what='adapter option')}"
        ) from None


class ModelAdapter(ABC):
    """Base class for a served model. Nothing heavy happens in `__init__`."""

    inputs: ClassVar[list[TensorSpec]] = []
    outputs: ClassVar[list[TensorSpec]] = []
    Params: ClassVar[type[OIPParams]] = OIPParams
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.options: Any = options_for(manifest, self.Options)
        self.Params.from_oip({}, manifest.defaults)  # the manifest's defaults must parse
        self.check = InputCheck(manifest.name, manifest.input, self.inputs)
        self.resolved: ResolvedModel | None = None
        self.device = "cpu"

    @property
    def name(self) -> str:
        return self.manifest.name

    # -- the request path -------------------------------------------------------------------

    def params(self, request: InferRequest) -> Any:
        """This request's parameters as the family's `Params` (parsed once per request)."""
        if request.parsed is None:
            request.parsed = self.Params.from_oip(request.parameters, self.manifest.defaults)
        return request.parsed

    def preprocess(self, request: InferRequest) -> list[Item]:
        """Contract checks around the family's `decode` and `prepare`."""
        self.check.check_request(request)
        params = self.params(request)
        samples = self.decode(request, params)
        self.check.check_count(len(samples))
        for sample in samples:
            self.check.check_sample(sample)
        return self.prepare(samples, params, request)

    @abstractmethod
    def decode(self, request: InferRequest, params: Any) -> list[Sample]:
        """Read the request's inputs into samples (files decoded, texts read)."""

    @abstractmethod
    def prepare(self, samples: list[Sample], params: Any, request: InferRequest) -> list[Item]:
        """Turn checked samples into batcher items (resampling, normalisation, tokenising)."""

    @abstractmethod
    def load(self, resolved: ResolvedModel, device: str) -> None:
        """Load weights from `resolved.path` onto `device`. Called once per process."""

    @abstractmethod
    def predict(self, batch: list[Item]) -> list[Any]:
        """Run the model on a batch of items; one result per item, in order."""

    @abstractmethod
    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        """Turn this request's results into OIP output tensors (the final artifact)."""

    def batch_limit(self, key: Any) -> int | None:
        """At most this many items of `key` per batch (None: the batcher's max_batch_size).

        A family whose memory per item is known (an image size on a GPU) bounds batches by
        the device's free memory here; the batcher takes the smaller of the two.
        """
        return None

    # -- state and metadata -----------------------------------------------------------------

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

    def response(self, outputs: dict[str, Any], **parameters: Any) -> InferResponse:
        """An InferResponse for this model with its provenance in the parameters."""
        return InferResponse(
            model_name=self.name,
            model_version=self.manifest.version,
            outputs=outputs,
            parameters={**self.provenance(), **parameters},
        )

    def config(self, batching: Any) -> dict[str, Any]:
        """Triton's model configuration (`GET /v2/models/{m}/config`), for perf_analyzer-style
        tools: the batch axis is the leading -1 of a tensor's shape, as Triton writes it."""

        def tensor(spec: TensorSpec) -> dict[str, Any]:
            dims = (
                list(spec.shape[1:])
                if len(spec.shape) > 1 and spec.shape[0] == -1
                else list(spec.shape)
            )
            kind = "TYPE_STRING" if spec.datatype == "BYTES" else f"TYPE_{spec.datatype}"
            return {"name": spec.name, "data_type": kind, "dims": dims or [1],
                    "optional": spec.optional}  # fmt: skip

        return {
            "name": self.name,
            "platform": f"medserve_{self.manifest.family}",
            "backend": "medserve",
            "version_policy": {"latest": {"num_versions": 1}},
            "max_batch_size": batching.max_batch_size,
            "input": [tensor(spec) for spec in self.inputs],
            "output": [tensor(spec) for spec in self.outputs],
            "dynamic_batching": {
                "max_queue_delay_microseconds": int(batching.max_queue_delay_ms * 1000),
                "default_queue_policy": {"max_queue_size": batching.max_queue_size},
                "priority_levels": 2,
                "default_priority_level": 1,
            },
            "instance_group": [
                {"count": 1, "kind": "KIND_GPU" if self.device.startswith("cuda") else "KIND_CPU"}
            ],
            "parameters": {"family": {"string_value": self.manifest.family}},
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
