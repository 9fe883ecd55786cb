"""SRRG adapters: chest X-ray -> structured report, and report text -> SRR-BERT labels.

`SRRGAdapter(manifest)` builds the adapter of the manifest's `adapter.kind` (contract in
`workers.srrg.contract`): `ReportAdapter` (chexpert-plus-srrg, in process), `RemoteReportAdapter`
(CheXagent-2-3b-srrg, remote code behind sha256 pins; it cannot load beside transformers 5) or
`LabelsAdapter` (SRR-BERT). Report outputs are parsed here (`workers.srrg.structure`), so every
caller gets the released-format text, its structure and its problems, labelled machine-generated.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from core.errors import InvalidInput, PayloadTooLarge
from model_store.manifest import Manifest
from model_store.store import ResolvedModel
from workers.runtime.adapter import Item, ModelAdapter
from workers.runtime.contract import DICOM_MODALITIES, Sample
from workers.runtime.oip import InferRequest, InferResponse
from workers.srrg.contract import (
    JOB_HINT_SCORE,
    LABEL_INPUTS,
    LABEL_OUTPUTS,
    MAX_SENTENCES,
    REPORT_INPUTS,
    REPORT_OUTPUTS,
    THRESHOLD,
    LabelParams,
    Options,
    Params,
    RemoteParams,
    ReportParams,
)
from workers.srrg.label_maps import label_names
from workers.srrg.sentences import split_sentences
from workers.srrg.structure import parse
from workers.srrg.xray import DEFAULT_MAX_PIXELS, read_xray


def _rows(request: InferRequest, name: str) -> list[Any]:
    return list(np.asarray(request.inputs[name], dtype=object).reshape(-1))


class SRRGAdapter(ModelAdapter):
    """Builds the adapter for the manifest's `adapter.kind`."""

    Options = Options
    Params = Params

    def __new__(cls, manifest: Manifest) -> SRRGAdapter:
        if cls is SRRGAdapter:
            kinds: dict[str, type[SRRGAdapter]] = {
                "report": ReportAdapter,
                "remote_report": RemoteReportAdapter,
                "labels": LabelsAdapter,
            }
            kind = str(manifest.adapter.get("kind", ""))
            if kind not in kinds:
                raise InvalidInput(
                    f"manifest '{manifest.name}': adapter.kind must be one of {', '.join(kinds)}"
                )
            cls = kinds[kind]
        return super().__new__(cls)


class _XRayReports(SRRGAdapter):
    """What both report kinds share: X-ray files in, parsed structured reports out."""

    inputs = REPORT_INPUTS
    outputs = REPORT_OUTPUTS

    def __init__(self, manifest: Manifest) -> None:
        super().__init__(manifest)
        self.section: str = self.options.section
        self.max_pixels = int(manifest.input.max_pixels or DEFAULT_MAX_PIXELS)

    def _dtype(self, device: str) -> str:
        return "float32" if device == "cpu" else str(self.options.dtype_gpu)

    def decode(self, request: InferRequest, params: Any) -> list[Sample]:
        rows = _rows(request, "IMAGE")
        samples = []
        for index, raw in enumerate(rows):
            if not isinstance(raw, bytes | bytearray) or not raw:
                raise InvalidInput(f"IMAGE[{index}] is empty; send the X-ray file's bytes")
            try:
                image, tag = read_xray(bytes(raw), max_pixels=self.max_pixels)
            except InvalidInput as exc:
                where = f"image {index}: " if len(rows) > 1 else ""
                raise InvalidInput(where + exc.message) from None
            modality = DICOM_MODALITIES.get(tag.upper(), "xray")
            pixels = np.moveaxis(np.asarray(image), -1, 0)
            samples.append(Sample("image", pixels, modality, info={"image": image}))
        return samples

    def settings(self, params: Any) -> dict[str, Any]:
        """The decoding settings a response reports."""
        return params.model_dump()

    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        parsed = [parse(text, self.section) for text in results]
        outputs = {
            "text": np.array([t.encode("utf-8") for t in results], dtype=np.object_),
            "report": np.array([p.text().encode("utf-8") for p in parsed], dtype=np.object_),
            "structure": np.array(
                [json.dumps(p.to_dict()).encode("utf-8") for p in parsed], dtype=np.object_
            ),
            "structure_valid": np.array([p.valid for p in parsed], dtype=np.bool_),
        }
        return self.response(
            outputs,
            machine_generated=True,
            section=self.section,
            **self.settings(self.params(request)),
        )


class ReportAdapter(_XRayReports):
    """chexpert-plus-srrg_findings / _impression: VisionEncoderDecoder, batched beam search."""

    Params = ReportParams

    def load(self, resolved: ResolvedModel, device: str) -> None:
        from workers.srrg.model import load_report_model

        self.model = load_report_model(
            resolved.path, self.section, device=device, dtype=self._dtype(device)
        )
        self.device = device
        self.resolved = resolved

    def prepare(self, samples: list[Sample], params: Any, request: InferRequest) -> list[Item]:
        from workers.srrg.compute import pixels
        from workers.srrg.model import Generation

        self.model.check(Generation(num_beams=params.num_beams, max_length=params.max_length))
        key = ("generate", params.num_beams, params.max_length)
        return [Item(pixels(self.model, s.info["image"]), key=key) for s in samples]

    def predict(self, batch: list[Item]) -> list[Any]:
        from workers.srrg.compute import generate_batch
        from workers.srrg.model import Generation

        _, num_beams, max_length = batch[0].key
        settings = Generation(num_beams=num_beams, max_length=max_length)
        return generate_batch(self.model, [item.data for item in batch], settings)


class RemoteReportAdapter(_XRayReports):
    """CheXagent-2-3b-srrg-*: loads only remote code whose sha256 the manifest pins."""

    Params = RemoteParams

    def load(self, resolved: ResolvedModel, device: str) -> None:
        from workers.srrg.remote import load_remote_report_model

        self.model = load_remote_report_model(
            resolved.path,
            self.section,
            self.options.remote_code_sha256,
            device=device,
            dtype=self._dtype(device),
        )
        self.device = device
        self.resolved = resolved

    def prepare(self, samples: list[Sample], params: Any, request: InferRequest) -> list[Item]:
        return [Item(s.info["image"], key=("remote", params.max_new_tokens)) for s in samples]

    def predict(self, batch: list[Item]) -> list[Any]:
        return [self.model.generate([item.data], item.key[1]) for item in batch]


class LabelsAdapter(SRRGAdapter):
    """SRR-BERT: reports split into sentences, sentences batched across requests."""

    inputs = LABEL_INPUTS
    outputs = LABEL_OUTPUTS
    Params = LabelParams

    def __init__(self, manifest: Manifest) -> None:
        super().__init__(manifest)
        self.label_set: str = self.options.label_set
        self.names = label_names(self.label_set)

    def load(self, resolved: ResolvedModel, device: str) -> None:
        from workers.srrg.labels import load_labeller

        subdir = self.options.tokenizer_subdir
        self.labeller = load_labeller(
            resolved.path,
            self.label_set,
            tokenizer_folder=resolved.path / subdir if subdir else None,
            device=device,
            batch_size=self.manifest.batching.max_batch_size,
        )
        self.device = device
        self.resolved = resolved

    def decode(self, request: InferRequest, params: Any) -> list[Sample]:
        samples = []
        for index, raw in enumerate(_rows(request, "text")):
            try:
                text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else str(raw)
            except UnicodeDecodeError:
                raise InvalidInput(f"text[{index}] is not UTF-8 text") from None
            if not text.strip():
                raise InvalidInput(
                    f"text[{index}] is empty; send the report text (RadEval scores an empty "
                    "report as the single sentence '.', so send '.' to score one)"
                )
            samples.append(Sample("text", text, "text"))
        return samples

    def prepare(self, samples: list[Sample], params: Any, request: InferRequest) -> list[Item]:
        items = []
        for index, sample in enumerate(samples):
            text = str(sample.data)
            sentences = split_sentences(text) if params.split else [text.strip()]
            items += [Item(s, key=("labels",), meta={"report": index}) for s in sentences]
        if len(items) > MAX_SENTENCES:
            raise PayloadTooLarge(
                f"the reports hold {len(items)} sentences; one request takes at most "
                f"{MAX_SENTENCES}: {JOB_HINT_SCORE}"
            )
        return items

    def predict(self, batch: list[Item]) -> list[Any]:
        from workers.srrg.compute import label_batch

        probabilities = label_batch(self.labeller, [str(item.data) for item in batch])
        return [
            (item.data, item.meta["report"], row)
            for item, row in zip(batch, probabilities, strict=True)
        ]

    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        count = len(_rows(request, "text"))
        probabilities = np.stack([row for _, _, row in results]).astype(np.float32)
        flags = (probabilities > THRESHOLD).astype(np.uint8)
        index = np.array([report for _, report, _ in results], dtype=np.int32)
        merged = np.zeros((count, len(self.names)), dtype=np.uint8)
        np.maximum.at(merged, index, flags)
        outputs = {
            "sentence": np.array([str(s).encode("utf-8") for s, _, _ in results], dtype=np.object_),
            "report_index": index,
            "labels": flags,
            "probabilities": probabilities,
            "report_labels": merged,
        }
        return self.response(
            outputs,
            machine_generated=True,
            label_set=self.label_set,
            label_count=len(self.names),
            threshold=THRESHOLD,
            split=bool(self.params(request).split),
        )
