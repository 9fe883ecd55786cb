"""The manifest's input contract, executed: every request is checked here before a family's
preprocessing runs, so a CT sent to an X-ray model, a 2D image sent to a 3D model, an
oversized or non-finite input never reaches a model.

Two steps: `check_request` (tensor names and datatypes against the adapter's metadata, item
count, file sizes) on the raw OIP request, then `check_sample` on each decoded `Sample`
(modality, dimensions, channels, sides, size, finite values, text length).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from core.errors import InvalidInput, PayloadTooLarge
from model_store.manifest import InputContract
from workers.runtime.oip import InferRequest, datatype_of
from workers.runtime.spec import TensorSpec

Kind = Literal["image", "volume", "text", "tensor"]

# DICOM Modality tags -> the platform's modality names.
DICOM_MODALITIES = {"CR": "xray", "DX": "xray", "RG": "xray", "DR": "xray", "CT": "ct", "MR": "mri"}


@dataclass
class Sample:
    """One decoded input: an image [C,H,W], a volume [X,Y,Z], a text, or a plain tensor."""

    kind: Kind
    data: Any
    modality: str | None = None
    affine: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def spatial(self) -> tuple[int, ...]:
        shape = tuple(int(d) for d in np.shape(self.data))
        return shape[1:] if self.kind == "image" else shape

    @property
    def channels(self) -> int | None:
        return int(np.shape(self.data)[0]) if self.kind == "image" else None


def _human(n: int) -> str:
    return f"{n:,}".replace(",", " ")


class InputCheck:
    """One model's contract, ready to check requests and samples."""

    def __init__(self, model: str, contract: InputContract, inputs: list[TensorSpec]) -> None:
        self.model = model
        self.contract = contract
        self.inputs = {spec.name: spec for spec in inputs}

    def check_request(self, request: InferRequest) -> None:
        """Known input names with the datatypes the metadata lists; files within the limit."""
        unknown = [name for name in request.inputs if name not in self.inputs]
        if unknown:
            raise InvalidInput(
                f"model '{self.model}' has no input {unknown[0]!r}; its inputs are "
                f"{', '.join(self.inputs)} (see GET /v2/models/{self.model})"
            )
        required = [s.name for s in self.inputs.values() if not s.optional]
        missing = [name for name in required if name not in request.inputs]
        if missing:
            raise InvalidInput(f"model '{self.model}' needs input {missing[0]!r}")
        limit = self.contract.max_file_mb
        for name, array in request.inputs.items():
            spec = self.inputs[name]
            datatype = datatype_of(array)
            if datatype not in spec.datatypes:
                raise InvalidInput(
                    f"input {name!r} must be {' or '.join(spec.datatypes)}, not {datatype}"
                )
            if datatype == "BYTES" and limit is not None:
                size = max((len(v) for v in np.asarray(array).reshape(-1)), default=0)
                if size > limit * (1 << 20):
                    raise PayloadTooLarge(
                        f"input {name!r} holds a {size / (1 << 20):.1f} MB file; model "
                        f"'{self.model}' accepts at most {limit:g} MB"
                    )

    def check_count(self, n: int, what: str = "items") -> None:
        most = self.contract.max_items
        if n < 1:
            raise InvalidInput(f"send at least one of the {what}")
        if most is not None and n > most:
            raise InvalidInput(
                f"{n} {what} in one request; model '{self.model}' takes at most {most}: "
                "split the request (or use a job for large sets)"
            )

    def check_sample(self, sample: Sample) -> None:
        if sample.kind == "text":
            self._text(sample)
            return
        if sample.kind in ("image", "volume"):
            self._modality(sample)
            self._geometry(sample)
        array = np.asarray(sample.data)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise InvalidInput("the input contains NaN or infinite values; send finite values")

    def _text(self, sample: Sample) -> None:
        text = sample.data
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("a text input is empty; send the text to process")
        most = self.contract.max_text_chars
        if most is not None and len(text) > most:
            raise InvalidInput(
                f"a text input is {len(text)} characters; model '{self.model}' takes at most {most}"
            )

    def _modality(self, sample: Sample) -> None:
        allowed = [m for m in self.contract.modalities if m not in ("text", "tensor")]
        if not allowed or sample.modality is None:
            return
        if sample.modality not in allowed:
            raise InvalidInput(
                f"the input is {sample.modality.upper()} but model '{self.model}' takes "
                f"{' or '.join(m.upper() for m in allowed)}; send one of those or use a model "
                "made for this modality"
            )

    def _geometry(self, sample: Sample) -> None:
        c = self.contract
        dims = 3 if sample.kind == "volume" else 2
        if c.dims and dims != c.dims:
            what = "a 3D volume" if dims == 3 else "a 2D image"
            raise InvalidInput(
                f"the input is {what} but model '{self.model}' takes {c.dims}D input; "
                f"use a {dims}D model"
            )
        spatial = sample.spatial
        if c.channels and sample.channels is not None and sample.channels not in c.channels:
            raise InvalidInput(
                f"the image has {sample.channels} channels; model '{self.model}' takes "
                f"{' or '.join(str(n) for n in c.channels)}"
            )
        if c.min_side and min(spatial, default=0) < c.min_side:
            raise InvalidInput(
                f"the input is {'x'.join(str(d) for d in spatial)}; model '{self.model}' needs "
                f"at least {c.min_side} pixels on every side"
            )
        count = int(np.prod(spatial, dtype=np.int64))
        if c.max_pixels and count > c.max_pixels:
            raise PayloadTooLarge(
                f"the input has {_human(count)} pixels; model '{self.model}' takes at most "
                f"{_human(c.max_pixels)}: send a smaller image or volume"
            )
