"""MedVAE adapter: encode images to latents and decode latents to images, 2D and 3D.

OIP inputs (one of): `IMAGE` BYTES [1] (PNG, JPEG, single-frame DICOM, NIfTI, .npy file),
`PIXELS` numeric ([H,W], [C,H,W] or [N,C,H,W] for 2D; [X,Y,Z] in RAS order for 3D), `LATENT` FP32
([C,h,w] / [N,C,h,w] / [C,x,y,z]) or `LATENT_FILE` BYTES [1] (.npy, safetensors, NIfTI). Parameters:
`modality` (xray|ct|mri), `latent` (s1|s2), `sample`, `seed`, `format`, `crop`, `roi_size`,
`value_range`, `bits`, `spacing`. Outputs: `LATENT` or `IMAGE` (FP32, leading batch axis), or
`FILE` BYTES when `format` is given; metadata travels in the response parameters.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import numpy as np

from core.errors import InvalidInput
from model_store.store import ResolvedModel
from workers.imaging import writers
from workers.imaging.readers import Decoded, check_finite, read_any
from workers.runtime.adapter import Item, ModelAdapter, TensorSpec
from workers.runtime.oip import InferRequest, InferResponse

FORMATS_ENCODE = ("npy", "safetensors", "nifti")
FORMATS_DECODE = ("png", "nifti", "npy")
DEFAULT_MAX_PIXELS = {2: 8192 * 8192, 3: 1024 * 1024 * 1024}


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _json_param(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise InvalidInput(f"parameter '{name}' must be JSON, e.g. [0, 4000]") from None
    return value


class MedVAEAdapter(ModelAdapter):
    inputs = [
        TensorSpec("IMAGE", "BYTES", [1], optional=True),
        TensorSpec("PIXELS", "FP32", [-1, -1, -1], optional=True),
        TensorSpec("LATENT", "FP32", [-1, -1, -1, -1], optional=True),
        TensorSpec("LATENT_FILE", "BYTES", [1], optional=True),
    ]
    outputs = [
        TensorSpec("LATENT", "FP32", [-1, -1, -1, -1]),
        TensorSpec("IMAGE", "FP32", [-1, -1, -1, -1]),
        TensorSpec("FILE", "BYTES", [-1]),
    ]

    def load(self, resolved: ResolvedModel, device: str) -> None:
        import torch

        from workers.medvae.compute import Window
        from workers.medvae.model import VARIANTS, load_variant

        options = self.manifest.adapter
        self.variant = VARIANTS[options["variant"]]
        model, self.load_report = load_variant(
            resolved.path,
            self.variant,
            allow_pickle=resolved.weights == "pulled",
            merge_lora=bool(options.get("merge_lora", True)),
        )
        self.model = model.to(torch.device(device))
        self.window = Window(
            int(options.get("roi_size", 96)),
            float(options.get("overlap", 0.25)),
            int(options.get("sw_batch_size", 1)),
        )
        self.max_pixels = int(self.manifest.input.max_pixels or DEFAULT_MAX_PIXELS[self.dims])
        self.device = device
        self.resolved = resolved

    @property
    def dims(self) -> int:
        return self.variant.dims

    # ---- preprocess ------------------------------------------------------------------------

    def preprocess(self, request: InferRequest) -> list[Item]:
        params = request.parameters
        if "LATENT" in request.inputs or "LATENT_FILE" in request.inputs:
            return self._decode_items(request, params)
        if "IMAGE" in request.inputs or "PIXELS" in request.inputs:
            return self._encode_items(request, params)
        raise InvalidInput(
            "send IMAGE (file bytes) or PIXELS to encode, LATENT or LATENT_FILE to decode"
        )

    def _modality(self, params: dict[str, Any]) -> str:
        modality = str(params.get("modality") or ("xray" if self.dims == 2 else "")).lower()
        if self.dims == 3 and modality not in ("ct", "mri"):
            raise InvalidInput(f"model '{self.name}' is 3D: send modality=ct or modality=mri")
        if modality not in ("xray", "ct", "mri"):
            raise InvalidInput("modality must be xray, ct or mri")
        return modality

    def _options(self, params: dict[str, Any], *, encode: bool) -> dict[str, Any]:
        fmt = params.get("format")
        allowed = FORMATS_ENCODE if encode else FORMATS_DECODE
        if fmt is not None and fmt not in allowed:
            raise InvalidInput(f"format must be one of {', '.join(allowed)}")
        if fmt == "nifti" and self.dims == 2:
            raise InvalidInput("NIfTI output is for 3D models; use npy or safetensors (or png)")
        if fmt == "png" and self.dims == 3:
            raise InvalidInput("3D models decode to NIfTI; use format=nifti or npy")
        kind = str(params.get("latent", "s1"))
        if kind not in ("s1", "s2"):
            raise InvalidInput("latent must be s1 (stage-1 posterior) or s2 (stage-2 projection)")
        sample = _flag(params.get("sample", False))
        seed = params.get("seed")
        if sample and seed is None:
            seed = secrets.randbelow(2**31)
        if seed is not None and (not str(seed).lstrip("-").isdigit() or not 0 <= int(seed) < 2**63):
            raise InvalidInput("seed must be a non-negative integer")
        roi = int(params.get("roi_size", self.window.roi))
        if roi % 16 or not 16 <= roi <= 256:
            raise InvalidInput("roi_size must be a multiple of 16 between 16 and 256")
        crop = str(params.get("crop", "foreground"))
        if crop not in ("foreground", "none"):
            raise InvalidInput("crop must be foreground (as released) or none")
        bits = int(params.get("bits", 8))
        if bits not in (8, 16):
            raise InvalidInput("bits must be 8 or 16")
        return {
            "format": fmt,
            "latent": kind,
            "sample": sample,
            "seed": int(seed) if sample else None,
            "roi": roi,
            "crop": crop,
            "bits": bits,
        }

    def _decoded(self, request: InferRequest, params: dict[str, Any]) -> Decoded:
        if "IMAGE" in request.inputs:
            raw = np.asarray(request.inputs["IMAGE"]).reshape(-1)
            if raw.size != 1 or not isinstance(raw[0], bytes):
                raise InvalidInput("IMAGE must be one BYTES element holding the file")
            return read_any(raw[0], self.max_pixels)
        pixels = np.asarray(request.inputs["PIXELS"])
        if pixels.dtype.kind not in "fiub":
            raise InvalidInput("PIXELS must be a numeric tensor")
        if pixels.size > self.max_pixels * (3 if self.dims == 2 else 1):
            raise InvalidInput(f"PIXELS has {pixels.size} values, more than this model accepts")
        array = pixels.astype(np.float32)
        check_finite(array, "PIXELS tensor")
        affine = None
        if self.dims == 3:
            if array.ndim != 3:
                raise InvalidInput(f"model '{self.name}' is 3D: PIXELS must be [X,Y,Z] (RAS order)")
            spacing = _json_param(params, "spacing") or [1.0, 1.0, 1.0]
            affine = np.diag([*(float(s) for s in spacing), 1.0])
        elif array.ndim not in (2, 3, 4):
            raise InvalidInput(
                f"model '{self.name}' is 2D: PIXELS must be [H,W], [C,H,W] or [N,C,H,W]"
            )
        return Decoded(array, kind="tensor", dims=self.dims, affine=affine,
                       info={"from_8bit": pixels.dtype == np.uint8})  # fmt: skip

    def _encode_items(self, request: InferRequest, params: dict[str, Any]) -> list[Item]:
        from workers.medvae.compute import prepare_2d, prepare_3d

        modality = self._modality(params)
        opts = self._options(params, encode=True)
        decoded = self._decoded(request, params)
        if decoded.dims != self.dims:
            other = "3D volume" if decoded.dims == 3 else "2D image"
            use = "a 3D model (medvae-4-1-3d, medvae-8-1-3d)" if decoded.dims == 3 else "a 2D model"
            raise InvalidInput(
                f"the input is a {other} but '{self.name}' is {self.dims}D; use {use}"
            )
        meta = {"modality": modality, **opts}
        if self.dims == 3:
            volume = decoded.array
            low, high = float(volume.min()), float(volume.max())
            affine = decoded.affine if decoded.affine is not None else np.eye(4)
            tensor, out_affine = prepare_3d(volume, affine, modality, opts["crop"])
            meta.update(
                affine=out_affine, value_range=[low, high], input_shape=list(tensor.shape[1:])
            )
            return [Item(tensor, key=("encode3d", id(tensor)), meta=meta)]
        from_8bit = decoded.info.get("bits") == 8 or bool(decoded.info.get("from_8bit"))
        arrays = decoded.array if decoded.array.ndim == 4 else decoded.array[None]
        items = []
        for index, array in enumerate(arrays):
            tensor = prepare_2d(array, self.model.in_channels, from_8bit)
            seed = opts["seed"] + index if opts["seed"] is not None else None
            item_meta = {**meta, "seed": seed, "input_shape": list(tensor.shape[1:])}
            items.append(
                Item(tensor, key=("encode", tuple(tensor.shape), opts["latent"]), meta=item_meta)
            )
        return items

    def _decode_items(self, request: InferRequest, params: dict[str, Any]) -> list[Item]:
        import torch

        opts = self._options(params, encode=False)
        affine = None
        file_meta: dict[str, Any] = {}
        if "LATENT_FILE" in request.inputs:
            raw = np.asarray(request.inputs["LATENT_FILE"]).reshape(-1)
            if raw.size != 1 or not isinstance(raw[0], bytes):
                raise InvalidInput("LATENT_FILE must be one BYTES element holding the file")
            latent, file_meta, affine = writers.read_latent(raw[0], self.max_pixels)
        else:
            latent = np.asarray(request.inputs["LATENT"])
            if latent.dtype.kind not in "fiu":
                raise InvalidInput("LATENT must be a numeric tensor")
            latent = latent.astype(np.float32)
            check_finite(latent, "latent")
        if file_meta.get("latent") == "s2" or params.get("latent") == "s2":
            raise InvalidInput("an s2 (stage-2) latent cannot be decoded; encode with latent=s1")
        channels = self.variant.latent_channels
        spatial = self.dims
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
        if affine is None and self.dims == 3:
            given = _json_param(params, "affine")
            affine = np.asarray(given, dtype=np.float64) if given is not None else None
            if affine is not None and affine.shape != (4, 4):
                raise InvalidInput("affine must be a 4x4 matrix")
        value_range = _json_param(params, "value_range") or file_meta.get("value_range")
        modality = self._modality({"modality": params.get("modality") or file_meta.get("modality")})
        meta = {"modality": modality, **opts, "affine": affine, "value_range": value_range}
        items = []
        for row in batch:
            tensor = torch.from_numpy(np.ascontiguousarray(row))
            key = ("decode3d", id(tensor)) if self.dims == 3 else ("decode", tuple(tensor.shape))
            items.append(Item(tensor, key=key, meta=dict(meta)))
        return items

    # ---- predict ---------------------------------------------------------------------------

    def predict(self, batch: list[Item]) -> list[Any]:
        from workers.medvae.compute import (
            Window,
            decode_batch,
            decode_volume,
            encode_batch,
            encode_volume,
        )

        task = batch[0].key[0]
        metas = [item.meta for item in batch]
        if task == "encode":
            seeds = [item.meta["seed"] for item in batch]
            kind = batch[0].meta["latent"]
            return list(
                zip(
                    encode_batch(self.model, [i.data for i in batch], seeds, kind),
                    metas,
                    strict=True,
                )
            )
        if task == "decode":
            return list(
                zip(decode_batch(self.model, [item.data for item in batch]), metas, strict=True)
            )
        results = []
        for item in batch:
            window = Window(item.meta["roi"], self.window.overlap, self.window.sw_batch_size)
            if task == "encode3d":
                out = encode_volume(
                    self.model, item.data, window, item.meta["seed"], item.meta["latent"]
                )
            else:
                out = decode_volume(self.model, item.data, window)
            results.append((out, item.meta))
        return results

    # ---- postprocess -----------------------------------------------------------------------

    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        from workers.medvae.compute import image_affine, image_values, latent_affine

        decode = "LATENT" in request.inputs or "LATENT_FILE" in request.inputs
        meta = results[0][1]
        results = [array for array, _ in results]
        factor = self.variant.factor
        info: dict[str, Any] = {
            **self.provenance(),
            "task": "decode" if decode else "encode",
            "modality": meta["modality"],
            "dims": self.dims,
            "factor": factor,
        }
        affine = meta.get("affine")
        if decode:
            arrays = [image_values(r, meta["modality"] if self.dims == 3 else "xray",
                                   meta.get("value_range")) for r in results]  # fmt: skip
            stacked = np.stack(arrays).astype(np.float32)
            if affine is not None:
                affine = image_affine(np.asarray(affine), factor)
            info["synthetic"] = True
            info["value_unit"] = (
                {"ct": "HU"}.get(meta["modality"], "unit") if self.dims == 3 else "unit"
            )
            name = "IMAGE"
        else:
            stacked = np.stack(results).astype(np.float32)
            info.update(latent=meta["latent"], sample=meta["sample"], seed=meta["seed"],
                        input_shape=json.dumps(meta["input_shape"]))  # fmt: skip
            if self.dims == 3:
                affine = latent_affine(np.asarray(meta["affine"]), factor)
                info["value_range"] = json.dumps(meta["value_range"])
            name = "LATENT"
        info["shape"] = json.dumps(list(stacked.shape[1:]))
        if affine is not None:
            info["affine"] = json.dumps(np.round(np.asarray(affine), 6).tolist())
        outputs: dict[str, np.ndarray] = {}
        fmt = meta.get("format")
        if fmt is None:
            outputs[name] = stacked
        else:
            file_meta = {k: v for k, v in info.items() if v is not None}
            files = [self._file(row, fmt, file_meta, affine, meta) for row in stacked]
            outputs["FILE"] = np.array(files, dtype=np.object_)
            info["format"] = fmt
            info["media_type"] = writers.MEDIA_TYPES[fmt]
        return InferResponse(
            model_name=self.name,
            model_version=self.manifest.version,
            outputs=outputs,
            parameters={k: v for k, v in info.items() if v is not None},
        )

    def _file(self, row: np.ndarray, fmt: str, meta: dict[str, Any], affine: Any,
              opts: dict[str, Any]) -> bytes:  # fmt: skip
        if fmt == "png":
            return writers.to_png(row, meta, bits=opts["bits"])
        return writers.encode_array(row, fmt, meta, None if affine is None else np.asarray(affine))
