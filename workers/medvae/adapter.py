"""MedVAE adapter: encode images to latents and decode latents to images, 2D and 3D.

Tensors and parameters: `workers.medvae.contract`. Files are decoded here (readers check
declared sizes before allocating), checked against the manifest's input contract by the base
class, preprocessed as released (`workers.medvae.compute`) and, when `format` is given, written
back as labelled files (`workers.imaging.writers`).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import numpy as np

from core.errors import InvalidInput
from model_store.store import ResolvedModel
from workers.imaging import writers
from workers.imaging.readers import Decoded, read_any
from workers.medvae.contract import FORMATS_DECODE, FORMATS_ENCODE, INPUTS, OUTPUTS, Options
from workers.medvae.contract import Params as MedVAEParams
from workers.runtime.adapter import Item, ModelAdapter
from workers.runtime.contract import DICOM_MODALITIES, Sample
from workers.runtime.oip import InferRequest, InferResponse

DEFAULT_MAX_PIXELS = {2: 8192 * 8192, 3: 1024 * 1024 * 1024}


def _one_file(request: InferRequest, name: str) -> bytes:
    raw = np.asarray(request.inputs[name]).reshape(-1)
    if raw.size != 1 or not isinstance(raw[0], bytes) or not raw[0]:
        raise InvalidInput(f"{name} must be one BYTES element holding the file")
    return bytes(raw[0])


class MedVAEAdapter(ModelAdapter):
    inputs = INPUTS
    outputs = OUTPUTS
    Params = MedVAEParams
    Options = Options

    def __init__(self, manifest: Any) -> None:
        super().__init__(manifest)
        self.dims = 3 if self.options.variant.endswith("3d") else 2
        self.max_pixels = int(manifest.input.max_pixels or DEFAULT_MAX_PIXELS[self.dims])

    def load(self, resolved: ResolvedModel, device: str) -> None:
        import torch

        from workers.medvae.compute import Window
        from workers.medvae.model import VARIANTS, load_variant

        self.variant = VARIANTS[self.options.variant]
        model, self.load_report = load_variant(
            resolved.path,
            self.variant,
            allow_pickle=resolved.weights == "pulled",
            merge_lora=self.options.merge_lora,
        )
        self.model = model.to(torch.device(device))
        options = self.options
        self.window = Window(options.roi_size, options.overlap, options.sw_batch_size)
        self.device = device
        self.resolved = resolved

    # ---- decode: files and tensors to samples ------------------------------------------------

    def decode(self, request: InferRequest, params: MedVAEParams) -> list[Sample]:
        decoding = "LATENT" in request.inputs or "LATENT_FILE" in request.inputs
        encoding = "IMAGE" in request.inputs or "PIXELS" in request.inputs
        if decoding == encoding:
            raise InvalidInput(
                "send IMAGE (file bytes) or PIXELS to encode, or LATENT or LATENT_FILE to decode"
            )
        return self._latents(request, params) if decoding else self._images(request, params)

    def _modality(self, params: MedVAEParams, found: str | None) -> str:
        modality = params.modality or found or ("xray" if self.dims == 2 else None)
        if modality is None:
            raise InvalidInput(f"model '{self.name}' is 3D: send modality=ct or modality=mri")
        return modality

    def _images(self, request: InferRequest, params: MedVAEParams) -> list[Sample]:
        if "IMAGE" in request.inputs:
            decoded = read_any(_one_file(request, "IMAGE"), self.max_pixels)
        else:
            decoded = self._pixels(request, params)
        tag = DICOM_MODALITIES.get(str(decoded.info.get("modality", "")).upper())
        modality = self._modality(params, tag)
        from_8bit = decoded.info.get("bits") == 8 or bool(decoded.info.get("from_8bit"))
        info = {"from_8bit": from_8bit}
        if decoded.dims == 3:
            return [Sample("volume", decoded.array, modality, decoded.affine, info)]
        arrays = decoded.array if decoded.array.ndim == 4 else decoded.array[None]
        return [Sample("image", array, modality, None, info) for array in arrays]

    def _pixels(self, request: InferRequest, params: MedVAEParams) -> Decoded:
        pixels = np.asarray(request.inputs["PIXELS"])
        if pixels.size > self.max_pixels * (3 if self.dims == 2 else 1):
            raise InvalidInput(f"PIXELS has {pixels.size} values, more than this model accepts")
        array = pixels.astype(np.float32)
        if self.dims == 3:
            if array.ndim != 3:
                raise InvalidInput(f"model '{self.name}' is 3D: PIXELS must be [X,Y,Z] (RAS order)")
            affine = np.diag([*(params.spacing or [1.0, 1.0, 1.0]), 1.0])
            return Decoded(array, kind="tensor", dims=3, affine=affine)
        if array.ndim not in (2, 3, 4):
            raise InvalidInput(
                f"model '{self.name}' is 2D: PIXELS must be [H,W], [C,H,W] or [N,C,H,W]"
            )
        if array.ndim == 2:
            array = array[None]
        return Decoded(array, kind="tensor", dims=2, info={"from_8bit": pixels.dtype == np.uint8})

    def _latents(self, request: InferRequest, params: MedVAEParams) -> list[Sample]:
        affine, meta = None, {}
        if "LATENT_FILE" in request.inputs:
            raw = _one_file(request, "LATENT_FILE")
            latent, meta, affine = writers.read_latent(raw, self.max_pixels)
        else:
            latent = np.asarray(request.inputs["LATENT"]).astype(np.float32)
        if meta.get("latent") == "s2" or params.latent == "s2":
            raise InvalidInput("an s2 (stage-2) latent cannot be decoded; encode with latent=s1")
        if affine is None and params.affine is not None:
            affine = np.asarray(params.affine, dtype=np.float64)
            if affine.shape != (4, 4):
                raise InvalidInput("affine must be a 4x4 matrix")
        modality = self._modality(params, meta.get("modality"))
        info = {"value_range": params.value_range or meta.get("value_range")}
        return [Sample("tensor", row, modality, affine, info) for row in self._latent_rows(latent)]

    def _latent_rows(self, latent: np.ndarray) -> np.ndarray:
        channels, spatial = self.variant.latent_channels, self.dims
        if latent.ndim == spatial and channels == 1:
            latent = latent[None]
        batch = latent if latent.ndim == spatial + 2 else latent[None]
        if (
            batch.ndim != spatial + 2
            or batch.shape[1] != channels
            or (self.dims == 3 and batch.shape[0] != 1)
            or min(batch.shape[2:]) < 1
        ):
            want = "[C,h,w] or [N,C,h,w]" if spatial == 2 else "[C,x,y,z]"
            raise InvalidInput(
                f"latent shape {list(latent.shape)} does not fit '{self.name}': it expects "
                f"{want} with C={channels}"
            )
        limit = self.max_pixels // (self.variant.factor**spatial)
        if int(np.prod(batch.shape[2:])) > limit:
            raise InvalidInput(f"the latent is larger than '{self.name}' decodes ({limit} values)")
        return batch

    # ---- prepare: samples to items ----------------------------------------------------------

    def _settings(self, params: MedVAEParams, encode: bool) -> dict[str, Any]:
        allowed = FORMATS_ENCODE if encode else FORMATS_DECODE
        fmt = params.format
        if fmt is not None and fmt not in allowed:
            raise InvalidInput(f"format must be one of {', '.join(allowed)}")
        if encode and params.latent == "s2" and fmt == "npy":
            raise InvalidInput(
                "s2 latents are written as safetensors (which records the latent kind, so "
                "decode can refuse them); send format=safetensors"
            )
        if fmt == "nifti" and self.dims == 2:
            raise InvalidInput("NIfTI output is for 3D models; use npy or safetensors (or png)")
        if fmt == "png" and self.dims == 3:
            raise InvalidInput("3D models decode to NIfTI; use format=nifti or npy")
        seed = params.seed
        if params.sample and seed is None:
            seed = secrets.randbelow(2**31)
        return {"format": fmt, "latent": params.latent, "sample": params.sample,
                "seed": seed if params.sample else None, "roi": params.roi_size or self.window.roi,
                "crop": params.crop, "bits": params.bits}  # fmt: skip

    def prepare(
        self, samples: list[Sample], params: MedVAEParams, request: InferRequest
    ) -> list[Item]:
        if "LATENT" in request.inputs or "LATENT_FILE" in request.inputs:
            return self._decode_items(samples, params)
        from workers.medvae.compute import prepare_2d, prepare_3d

        opts = self._settings(params, encode=True)
        items = []
        for index, sample in enumerate(samples):
            meta = {"modality": sample.modality, **opts}
            if self.dims == 3:
                volume = np.asarray(sample.data)
                affine = sample.affine if sample.affine is not None else np.eye(4)
                rule = self.manifest.input.intensity.get(str(sample.modality))
                tensor, out_affine = prepare_3d(volume, affine, rule, opts["crop"])
                meta.update(
                    affine=out_affine,
                    value_range=[float(volume.min()), float(volume.max())],
                    input_shape=list(tensor.shape[1:]),
                )
                items.append(Item(tensor, key=("encode3d", id(tensor)), meta=meta))
                continue
            tensor = prepare_2d(sample.data, self.model.in_channels, sample.info["from_8bit"])
            meta.update(seed=opts["seed"] + index if opts["seed"] is not None else None,
                        input_shape=list(tensor.shape[1:]))  # fmt: skip
            key = ("encode", tuple(tensor.shape), opts["latent"])
            items.append(Item(tensor, key=key, meta=meta))
        return items

    def _decode_items(self, samples: list[Sample], params: MedVAEParams) -> list[Item]:
        import torch

        opts = self._settings(params, encode=False)
        items = []
        for sample in samples:
            meta = {"modality": sample.modality, **opts, "affine": sample.affine,
                    "value_range": sample.info["value_range"]}  # fmt: skip
            tensor = torch.from_numpy(np.ascontiguousarray(sample.data))
            key = ("decode3d", id(tensor)) if self.dims == 3 else ("decode", tuple(tensor.shape))
            items.append(Item(tensor, key=key, meta=meta))
        return items

    # ---- predict ---------------------------------------------------------------------------

    def predict(self, batch: list[Item]) -> list[Any]:
        from workers.medvae import compute

        task = batch[0].key[0]
        data = [item.data for item in batch]
        if task == "encode":
            seeds = [item.meta["seed"] for item in batch]
            outs = compute.encode_batch(self.model, data, seeds, batch[0].meta["latent"])
        elif task == "decode":
            outs = compute.decode_batch(self.model, data)
        else:
            outs = []
            for item in batch:
                window = compute.Window(item.meta["roi"], self.window.overlap,
                                        self.window.sw_batch_size)  # fmt: skip
                if task == "encode3d":
                    seed, kind = item.meta["seed"], item.meta["latent"]
                    outs.append(compute.encode_volume(self.model, item.data, window, seed, kind))
                else:
                    outs.append(compute.decode_volume(self.model, item.data, window))
        return list(zip(outs, [item.meta for item in batch], strict=True))

    # ---- postprocess -----------------------------------------------------------------------

    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        from workers.medvae.compute import image_affine, image_values, latent_affine

        decode = "LATENT" in request.inputs or "LATENT_FILE" in request.inputs
        meta = results[0][1]
        arrays = [array for array, _ in results]
        factor = self.variant.factor
        info: dict[str, Any] = {
            "task": "decode" if decode else "encode",
            "modality": meta["modality"],
            "dims": self.dims,
            "factor": factor,
        }
        affine = meta.get("affine")
        if decode:
            rule = self.manifest.input.intensity.get(meta["modality"]) if self.dims == 3 else None
            stacked = np.stack([image_values(a, rule, meta.get("value_range")) for a in arrays])
            if affine is not None:
                affine = image_affine(np.asarray(affine), factor)
            info["synthetic"] = True
            info["value_unit"] = rule.unit if rule is not None and rule.unit == "HU" else "unit"
            name = "IMAGE"
        else:
            stacked = np.stack(arrays)
            info.update(latent=meta["latent"], sample=meta["sample"], seed=meta["seed"],
                        input_shape=json.dumps(meta["input_shape"]))  # fmt: skip
            if self.dims == 3:
                affine = latent_affine(np.asarray(meta["affine"]), factor)
                info["value_range"] = json.dumps(meta["value_range"])
            name = "LATENT"
        stacked = stacked.astype(np.float32)
        info["shape"] = json.dumps(list(stacked.shape[1:]))
        if affine is not None:
            info["affine"] = json.dumps(np.round(np.asarray(affine), 6).tolist())
        outputs: dict[str, np.ndarray] = {}
        fmt = meta.get("format")
        if fmt is None:
            outputs[name] = stacked
        else:
            file_meta = {k: v for k, v in {**self.provenance(), **info}.items() if v is not None}
            files = [self._file(row, fmt, file_meta, affine, meta["bits"]) for row in stacked]
            outputs["FILE"] = np.array(files, dtype=np.object_)
            info.update(format=fmt, media_type=writers.MEDIA_TYPES[fmt])
        return self.response(outputs, **{k: v for k, v in info.items() if v is not None})

    @staticmethod
    def _file(row: np.ndarray, fmt: str, meta: dict[str, Any], affine: Any, bits: int) -> bytes:
        if fmt == "png":
            return writers.to_png(row, meta, bits=bits)
        return writers.encode_array(row, fmt, meta, None if affine is None else np.asarray(affine))
