"""Routes: MedVAE. `POST /v1/medvae/encode` (image -> latent) and `POST /v1/medvae/decode`
(latent -> image), 2D and 3D.

Both take JSON or multipart/form-data. The gateway checks cheap things (model family, one input,
file kind by its magic bytes) and sends the raw file to the worker as an OIP `BYTES` input: the
worker decodes, preprocesses and formats, so OIP clients and jobs share the same code.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from core.errors import InvalidInput
from service.deps import ModelsDep, RequestIdDep
from service.forms import parse_body, request_body
from service.schemas.medvae import (
    DecodeRequest,
    DecodeResponse,
    EncodeRequest,
    EncodeResponse,
    Tensor,
)
from workers.runtime.oip import DTYPES, InferResponse

router = APIRouter(tags=["medvae"])

# A 16x16 gradient PNG and the 1x4x4 zero latent of medvae-4-1-2d: Swagger's examples run as is.
EXAMPLE_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAAAAAA6mKC9AAAAEUlEQVR4nGNk4EAFTBwjWgAASdQIGE5wic0AAAAAS"
    "UVORK5CYII="
)
EXAMPLE_LATENT = (
    "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDEsIDQsIDQp"
    "LCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
)
ENCODE_BODY = request_body(
    EncodeRequest,
    "image_base64",
    {"model": "medvae-4-1-2d", "image_base64": EXAMPLE_PNG},
    "The image: PNG, JPEG, single-frame DICOM or NIfTI (.nii/.nii.gz).",
)
DECODE_BODY = request_body(
    DecodeRequest,
    "latent_base64",
    {"model": "medvae-4-1-2d", "latent_base64": EXAMPLE_LATENT},
    "The latent file from encode: .npy, safetensors or NIfTI.",
)


def _flatten(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def tensor_array(tensor: Tensor) -> np.ndarray:
    flat = _flatten(tensor.data)
    count = int(np.prod(tensor.shape, dtype=np.int64))
    if len(flat) != count:
        raise InvalidInput(f"tensor shape {tensor.shape} needs {count} values, got {len(flat)}")
    try:
        return np.asarray(flat, dtype=DTYPES[tensor.datatype]).reshape(tensor.shape)
    except (TypeError, ValueError):
        raise InvalidInput(f"tensor data does not fit datatype {tensor.datatype}") from None


def _params(values: dict[str, Any]) -> dict[str, Any]:
    """OIP parameters are scalars: lists travel as JSON text."""
    out = {}
    for key, value in values.items():
        if value is None:
            continue
        out[key] = json.dumps(value) if isinstance(value, list) else value
    return out


def _json(parameters: dict[str, Any], key: str) -> Any:
    value = parameters.get(key)
    return json.loads(value) if isinstance(value, str) else value


def _answer(result: InferResponse, response: str, fields: dict[str, Any]) -> Any:
    data = bytes(np.asarray(result.outputs["FILE"]).reshape(-1)[0])
    media_type = str(result.parameters.get("media_type", "application/octet-stream"))
    if response == "file":
        headers = {f"X-Medserve-{k.replace('_', '-').title()}": str(v)
                   for k, v in fields.items() if v is not None and k != "affine"}  # fmt: skip
        return Response(data, media_type=media_type, headers=headers)
    encoded = base64.b64encode(data).decode()
    return {**fields, "media_type": media_type, "data_base64": encoded, "data_b64": encoded}


def _provenance(p: dict[str, Any]) -> dict[str, Any]:
    return {k: p.get(k) for k in ("model", "version", "weights", "weights_digest")}


@router.post(
    "/v1/medvae/encode",
    response_model=EncodeResponse,
    summary="Encode a 2D image or 3D volume to a MedVAE latent",
    openapi_extra=ENCODE_BODY,
    responses={
        200: {
            "description": "JSON with the latent file in data_base64, or the raw "
            "file itself with response=file"
        }
    },
)
async def encode(request: Request, models: ModelsDep, request_id: RequestIdDep) -> Any:
    body, raw = await parse_body(request, EncodeRequest, "image_base64")
    models.manifest(body.model, family="medvae")
    if raw is not None:
        inputs = {"IMAGE": np.array([raw], dtype=np.object_)}
    else:
        assert body.tensor is not None
        inputs = {"PIXELS": tensor_array(body.tensor)}
    fmt = body.format or ("safetensors" if body.latent == "s2" else "npy")
    params = _params({"modality": body.modality, "latent": body.latent, "sample": body.sample,
                      "seed": body.seed, "format": fmt, "crop": body.crop,
                      "roi_size": body.roi_size, "spacing": body.spacing})  # fmt: skip
    result = await models.infer(body.model, inputs, params, request_id=request_id or None)
    p = result.parameters
    fields = {
        **_provenance(p),
        "latent": p.get("latent", body.latent),
        "shape": _json(p, "shape"),
        "dtype": "float32",
        "format": fmt,
        "factor": p.get("factor"),
        "modality": p.get("modality"),
        "sample": bool(p.get("sample", False)),
        "seed": p.get("seed"),
        "input_shape": _json(p, "input_shape"),
        "affine": _json(p, "affine"),
        "value_range": _json(p, "value_range"),
    }
    return _answer(result, body.response, fields)


@router.post(
    "/v1/medvae/decode",
    response_model=DecodeResponse,
    summary="Decode a MedVAE latent to an image (PNG for 2D, NIfTI for 3D)",
    openapi_extra=DECODE_BODY,
    responses={
        200: {
            "description": "JSON with the image file in data_base64, or the raw "
            "file itself with response=file"
        }
    },
)
async def decode(request: Request, models: ModelsDep, request_id: RequestIdDep) -> Any:
    body, raw = await parse_body(request, DecodeRequest, "latent_base64")
    manifest = models.manifest(body.model, family="medvae")
    fmt = body.format or ("nifti" if manifest.input.dims == 3 else "png")
    if raw is not None:
        inputs = {"LATENT_FILE": np.array([raw], dtype=np.object_)}
    else:
        assert body.tensor is not None
        inputs = {"LATENT": tensor_array(body.tensor).astype(np.float32)}
    params = _params({"modality": body.modality, "format": fmt, "value_range": body.value_range,
                      "affine": body.affine, "bits": body.bits})  # fmt: skip
    result = await models.infer(body.model, inputs, params, request_id=request_id or None)
    p = result.parameters
    fields = {
        **_provenance(p),
        "shape": _json(p, "shape"),
        "format": fmt,
        "modality": p.get("modality"),
        "value_unit": p.get("value_unit", "unit"),
        "synthetic": True,
        "affine": _json(p, "affine"),
    }
    return _answer(result, body.response, fields)
