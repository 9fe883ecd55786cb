"""Demographic classifiers adapter: chest X-ray files -> predicted sex, race or age.

Tensors: `workers.cxr_demographics.contract`. Files are decoded here (PNG, JPEG, single-frame
DICOM), checked against the manifest's input contract by the base class, resized to 224 in
the worker's preprocessing threads, and batched across requests (one key per model: every
image is 3x224x224 after the resize).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from core.errors import InvalidInput
from model_store.store import ResolvedModel
from workers.cxr_demographics.contract import CLASSES, INPUTS, OUTPUTS, QC_SIZE, Options, Params
from workers.imaging.readers import read_any, sniff
from workers.runtime.adapter import Item, ModelAdapter
from workers.runtime.contract import DICOM_MODALITIES, Sample
from workers.runtime.oip import InferRequest, InferResponse

DEFAULT_MAX_PIXELS = 4096 * 4096


class DemographicsAdapter(ModelAdapter):
    inputs = INPUTS
    outputs = OUTPUTS
    Params = Params
    Options = Options

    def __init__(self, manifest: Any) -> None:
        super().__init__(manifest)
        self.kind: str = self.options.kind
        self.classes = CLASSES[self.kind]
        self.max_pixels = int(manifest.input.max_pixels or DEFAULT_MAX_PIXELS)

    def load(self, resolved: ResolvedModel, device: str) -> None:
        from workers.cxr_demographics.model import load_model

        pulled = resolved.weights == "pulled"
        self.model = load_model(resolved.path, self.options, pulled, device)
        self.device = device
        self.resolved = resolved

    def decode(self, request: InferRequest, params: Params) -> list[Sample]:
        rows = list(np.asarray(request.inputs["IMAGE"], dtype=object).reshape(-1))
        samples = []
        for index, raw in enumerate(rows):
            where = f"IMAGE[{index}]: " if len(rows) > 1 else ""
            if not isinstance(raw, bytes | bytearray) or not raw:
                raise InvalidInput(f"{where}empty; send the X-ray file's bytes")
            if sniff(bytes(raw)) not in ("png", "jpeg", "dicom"):
                raise InvalidInput(f"{where}send a PNG, JPEG or single-frame DICOM chest X-ray")
            try:
                decoded = read_any(bytes(raw), self.max_pixels)
            except InvalidInput as exc:
                raise InvalidInput(where + exc.message) from None
            if decoded.dims != 2 or decoded.array.ndim != 3:
                raise InvalidInput(f"{where}the file holds more than one 2D image")
            tag = str(decoded.info.get("modality", "")).upper()
            samples.append(Sample("image", decoded.array, DICOM_MODALITIES.get(tag, "xray")))
        return samples

    def prepare(self, samples: list[Sample], params: Params, request: InferRequest) -> list[Item]:
        from workers.cxr_demographics.compute import resize

        return [Item(resize(sample.data), key=("qc",)) for sample in samples]

    def predict(self, batch: list[Item]) -> list[Any]:
        from workers.cxr_demographics.compute import predict

        out = predict(self.model, self.kind, [item.data for item in batch], self.device)
        return list(out)

    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        values = np.stack([np.asarray(r, dtype=np.float32) for r in results])
        outputs: dict[str, np.ndarray] = {}
        if self.kind == "age":
            outputs["age"] = values.reshape(-1)
            labels = [str(int(np.rint(v))) for v in outputs["age"]]  # the release's rounding
        else:
            outputs["probabilities"] = values
            labels = [self.classes[int(i)] for i in values.argmax(axis=1)]
        outputs["prediction"] = np.array([s.encode() for s in labels], dtype=np.object_)
        return self.response(
            outputs,
            kind=self.kind,
            classes=json.dumps(list(self.classes)),
            qc_size=QC_SIZE,
            machine_generated=True,
        )
