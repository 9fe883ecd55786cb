"""Merlin adapters, one per served kind (the manifest's `adapter.kind`): `clip` (CT analysis and
text embedding), `five_year` and `report`. `build_adapter` picks the class.

All three read a CT the same way (`CTAdapter`): the file is decoded with its header checks
(`workers.merlin.preprocess`), checked against the manifest's input contract by the base class,
and resampled as released into a [1,224,224,160] tensor, so volumes of any input size batch
together. At most `preprocess_concurrency` files are decoded at once, which bounds the memory a
burst of large CTs takes. Labelled results travel as JSON in `RESULT` (see `contract`).
"""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

import numpy as np

from core.errors import InvalidInput
from model_store.manifest import Manifest
from model_store.store import ResolvedModel
from workers.merlin.contract import (
    FIVE_YEAR_OUTPUTS,
    HU_WINDOW,
    IMAGE_INPUTS,
    INPUTS,
    ORIENTATION,
    OUTPUTS,
    PIXDIM,
    REPORT_OUTPUTS,
    ROI,
    ClipParams,
    FiveYearParams,
    Options,
    ReportParams,
)
from workers.merlin.findings import FindingBank
from workers.merlin.prompts import REPORT_SEPARATOR, STOP_SEQUENCE, report_prompt
from workers.runtime.adapter import Item, ModelAdapter, options_for
from workers.runtime.contract import Sample
from workers.runtime.oip import InferRequest, InferResponse

DEFAULT_MAX_VOXELS = 512 * 512 * 1024


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _objects(values: list[bytes]) -> np.ndarray:
    out = np.empty(len(values), dtype=np.object_)
    out[:] = values
    return out


def npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def _torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


class CTAdapter(ModelAdapter):
    """A CT file in `IMAGE` -> one preprocessed volume item (shared by the three kinds)."""

    Options = Options
    task = "analyze"

    def __init__(self, manifest: Manifest) -> None:
        super().__init__(manifest)
        self.max_voxels = int(manifest.input.max_pixels or DEFAULT_MAX_VOXELS)
        self.gate = threading.BoundedSemaphore(self.options.preprocess_concurrency)
        self.model: Any = None

    def preprocess(self, request: InferRequest) -> list[Item]:
        if "IMAGE" not in request.inputs:  # texts: nothing large to decode
            return super().preprocess(request)
        with self.gate:  # decoding and resampling hold several copies of the voxels
            return super().preprocess(request)

    def decode(self, request: InferRequest, params: Any) -> list[Sample]:
        from workers.merlin.preprocess import read_ct

        raw = np.asarray(request.inputs["IMAGE"]).reshape(-1)
        if raw.size != 1 or not isinstance(raw[0], bytes) or not raw[0]:
            raise InvalidInput("IMAGE must be one BYTES element holding the CT file")
        volume = read_ct(bytes(raw[0]), self.max_voxels)
        return [Sample("volume", volume.array, "ct", volume.affine, {"volume": volume})]

    def volume_item(self, sample: Sample, key: Any, **meta: Any) -> Item:
        """Resample as released; the sample's voxels are let go as soon as they are used."""
        import nibabel as nib

        from workers.merlin.preprocess import transform

        volume = sample.info.pop("volume")
        sample.data = None
        spacing = np.linalg.norm(volume.affine[:3, :3], axis=0)
        info = {
            "source": volume.source,
            "input_shape": [int(s) for s in volume.array.shape],
            "spacing": [round(float(s), 4) for s in spacing],
            "orientation": "".join(nib.orientations.aff2axcodes(volume.affine)),
            "output_shape": list(ROI),
            "target_spacing": list(PIXDIM),
            "target_orientation": ORIENTATION,
            "hu_window": list(HU_WINDOW),
            **({"slices": volume.info["slices"]} if "slices" in volume.info else {}),
        }
        return Item(transform(volume), key=key, meta={"preprocessing": info, **meta})

    def prepare(self, samples: list[Sample], params: Any, request: InferRequest) -> list[Item]:
        return [self.volume_item(s, (self.task,), params=params) for s in samples]

    def respond(self, outputs: dict[str, Any], result: dict[str, Any], **extra: Any) -> Any:
        """RESULT JSON (with provenance) beside `outputs`; preprocessing in the parameters."""
        document = {**self.provenance(), "machine_generated": True, **result}
        outputs["RESULT"] = _objects([_json_bytes(document)])
        pre = result.get("preprocessing", {})
        fields = {k: json.dumps(v) if isinstance(v, list) else v for k, v in pre.items()}
        return self.response(outputs, task=self.task, machine_generated=True, **fields, **extra)


class MerlinAdapter(CTAdapter):
    """The CLIP model: image features, embedding, phenotypes and findings; text embeddings."""

    inputs = INPUTS
    outputs = OUTPUTS
    Params = ClipParams

    def load(self, resolved: ResolvedModel, device: str) -> None:
        from workers.merlin.model import load_clip

        dtype = _torch_dtype(self.options.dtype)
        self.model = load_clip(resolved.path, with_text=True, dtype=dtype, device=device)
        self.bank = FindingBank(self.model, resolved, self.options.text_batch_size)
        # Counting tokens runs in the preprocessing threads while the batcher tokenizes: a
        # fast tokenizer must not be called from two threads at once, so prepare has its own.
        self.counter = copy.deepcopy(self.model.encode_text.tokenizer)
        self.counter_lock = threading.Lock()
        if self.options.precompute_findings:
            self.bank.builtin()
        self.device, self.resolved = device, resolved

    def decode(self, request: InferRequest, params: ClipParams) -> list[Sample]:
        if ("IMAGE" in request.inputs) == ("TEXT" in request.inputs):
            raise InvalidInput("send IMAGE (a CT file) to analyze, or TEXT (report texts) to embed")
        if "IMAGE" in request.inputs:
            return super().decode(request, params)
        texts = []
        for value in np.asarray(request.inputs["TEXT"]).reshape(-1):
            try:
                texts.append(value.decode("utf-8") if isinstance(value, bytes) else str(value))
            except UnicodeDecodeError:
                raise InvalidInput("TEXT elements must be UTF-8 text") from None
        return [Sample("text", text) for text in texts]

    def prepare(self, samples: list[Sample], params: ClipParams, request: InferRequest):
        if samples[0].kind != "text":
            return [self.volume_item(s, ("image",), params=params) for s in samples]
        from workers.merlin.model import TEXT_MAX_LENGTH, sanitize_report

        items = []
        for sample in samples:
            with self.counter_lock:
                tokens = len(self.counter(sanitize_report(sample.data))["input_ids"])
            meta = {"tokens": min(tokens, TEXT_MAX_LENGTH), "truncated": tokens > TEXT_MAX_LENGTH}
            items.append(Item(sample.data, key=("text",), meta={**meta, "params": params}))
        return items

    def predict(self, batch: list[Item]) -> list[Any]:
        from workers.merlin import compute

        if batch[0].key == ("text",):
            rows = compute.embed_texts(
                self.model, [i.data for i in batch], self.options.text_batch_size
            )
            return [
                {"embedding": row, "meta": item.meta} for row, item in zip(rows, batch, strict=True)
            ]
        images = compute.encode_images(
            self.model, [i.data for i in batch], self.options.micro_batch
        )
        out = []
        for row, item in enumerate(batch):
            params: ClipParams = item.meta["params"]
            findings = None
            if "findings" in params.tasks:
                bank = self.bank.for_request(params.findings, params.findings_prompts)
                findings = compute.zero_shot(images.embedding[row : row + 1], bank)[0]
            out.append({"features": images.features[row], "embedding": images.embedding[row],
                        "logits": images.phenotype_logits[row], "findings": findings,
                        "meta": item.meta})  # fmt: skip
        return out

    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        params: ClipParams = self.params(request)
        if "TEXT" in request.inputs:
            return self._texts(params, results)
        from workers.merlin import compute

        result = results[0]
        doc: dict[str, Any] = {
            "tasks": params.tasks,
            "preprocessing": result["meta"]["preprocessing"],
        }
        outputs: dict[str, Any] = {}
        if "embedding" in params.tasks:
            if params.embedding_format == "npy":
                files = [npy_bytes(result["embedding"]), npy_bytes(result["features"])]
                outputs["FILE"] = _objects(files)
            else:
                outputs["EMBEDDING"] = result["embedding"][None].astype(np.float32)
                outputs["FEATURES"] = result["features"][None].astype(np.float32)
        if "phenotypes" in params.tasks:
            probabilities = compute.sigmoid(result["logits"])
            outputs["PHENOTYPES"] = probabilities[None].astype(np.float32)
            doc["phenotypes"] = compute.top_phenotypes(probabilities, params.top_count())
        if result["findings"] is not None:
            user = {f.name for f in params.findings_prompts}
            doc["findings"] = [
                {**vars(score), "source": "user" if score.name in user else "builtin"}
                for score in result["findings"]
            ]
        return self.respond(outputs, doc, tasks=json.dumps(params.tasks),
                            embedding_format=params.embedding_format)  # fmt: skip

    def _texts(self, params: ClipParams, results: list[dict[str, Any]]) -> Any:
        from workers.merlin.model import TEXT_MAX_LENGTH

        rows = np.stack([r["embedding"] for r in results])
        outputs: dict[str, Any] = {}
        if params.embedding_format == "npy":
            outputs["FILE"] = _objects([npy_bytes(rows)])
        else:
            outputs["TEXT_EMBEDDING"] = rows.astype(np.float32)
        doc = {
            "texts": [{k: r["meta"][k] for k in ("tokens", "truncated")} for r in results],
            "preprocessing": {
                "lowercase": True,
                "tokenize": "wordpunct",
                "max_tokens": TEXT_MAX_LENGTH,
            },
        }
        document = {**self.provenance(), **doc}
        outputs["RESULT"] = _objects([_json_bytes(document)])
        return self.response(outputs, task="embed_text", embedding_format=params.embedding_format,
                             dim=int(rows.shape[1]))  # fmt: skip


class MerlinFiveYearAdapter(CTAdapter):
    """The five-year model: CVD, IHD, HTN, DM, CKD and CLD probabilities."""

    inputs = IMAGE_INPUTS
    outputs = FIVE_YEAR_OUTPUTS
    Params = FiveYearParams
    task = "five_year"

    def load(self, resolved: ResolvedModel, device: str) -> None:
        from workers.merlin.model import load_five_year

        dtype = _torch_dtype(self.options.dtype)
        self.model = load_five_year(resolved.path, dtype=dtype, device=device)
        self.device, self.resolved = device, resolved

    def predict(self, batch: list[Item]) -> list[Any]:
        from workers.merlin import compute

        rows = compute.five_year(self.model, [i.data for i in batch], self.options.micro_batch)
        return [{"probabilities": r, "meta": i.meta} for r, i in zip(rows, batch, strict=True)]

    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        from workers.merlin.compute import five_year_named

        row, meta = results[0]["probabilities"], results[0]["meta"]
        doc = {"preprocessing": meta["preprocessing"], "five_year": five_year_named(row)}
        return self.respond({"FIVE_YEAR": row[None].astype(np.float32)}, doc)


class MerlinReportAdapter(CTAdapter):
    """Report generation: one greedy generation per organ-system prompt, as released."""

    inputs = IMAGE_INPUTS
    outputs = REPORT_OUTPUTS
    Params = ReportParams
    task = "report"

    def load(self, resolved: ResolvedModel, device: str) -> None:
        from workers.merlin.report_model import load_report

        dtype = _torch_dtype(self.options.dtype)
        self.model = load_report(resolved.path, variant=self.options.variant, dtype=dtype,
                                 device=device)  # fmt: skip
        self.device, self.resolved = device, resolved

    def prepare(self, samples: list[Sample], params: ReportParams, request: InferRequest):
        key = ("report", params.organs(), params.max_new_tokens, params.repetition_penalty)
        return [self.volume_item(s, key) for s in samples]

    def predict(self, batch: list[Item]) -> list[Any]:
        from workers.merlin.compute import generate_reports

        _, organs, max_new_tokens, penalty = batch[0].key
        texts = generate_reports(
            self.model, [i.data for i in batch], organs, max_new_tokens=max_new_tokens,
            repetition_penalty=penalty, micro_batch=self.options.micro_batch,
        )  # fmt: skip
        return [{"texts": t, "meta": i.meta} for t, i in zip(texts, batch, strict=True)]

    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        params: ReportParams = self.params(request)
        texts: dict[str, str] = results[0]["texts"]
        sections = [{"organ_system": organ, "prompt": report_prompt(organ), "text": texts[organ]}
                    for organ in params.organs()]  # fmt: skip
        generation = {
            "do_sample": False, "num_beams": 1, "max_new_tokens": params.max_new_tokens,
            "repetition_penalty": params.repetition_penalty, "stop_sequence": list(STOP_SEQUENCE),
            "split_on": REPORT_SEPARATOR, "variant": self.options.variant,
        }  # fmt: skip
        doc = {
            "preprocessing": results[0]["meta"]["preprocessing"],
            "organ_systems": sections,
            "report": " ".join(s["text"] for s in sections),
            "generation": generation,
        }
        return self.respond({}, doc, generation=json.dumps(generation))


KINDS: dict[str, type[CTAdapter]] = {
    "clip": MerlinAdapter,
    "five_year": MerlinFiveYearAdapter,
    "report": MerlinReportAdapter,
}


def build_adapter(manifest: Manifest) -> ModelAdapter:
    """The adapter of the manifest's kind (`adapter.kind`: clip, five_year or report)."""
    options = options_for(manifest, Options)
    return KINDS[options.kind](manifest)


__all__ = [
    "KINDS",
    "MerlinAdapter",
    "MerlinFiveYearAdapter",
    "MerlinReportAdapter",
    "build_adapter",
]
