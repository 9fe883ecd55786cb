"""Routes: MedVAE. `POST /v1/medvae/encode` (image -> latent) and `POST /v1/medvae/decode`
(latent -> image), 2D and 3D.

Both take JSON or multipart/form-data. The gateway checks cheap things (model family, one input,
file kind by its magic bytes) and sends the raw file to the worker as an OIP `BYTES` input: the
worker decodes, preprocesses and formats, so OIP clients and jobs share the same code.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, TypeVar

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ValidationError

from core.errors import BadRequest, InvalidInput, UnsupportedMediaType
from service.deps import ModelsDep, RequestIdDep
from service.schemas.medvae import (
    DecodeRequest,
    DecodeResponse,
    EncodeRequest,
    EncodeResponse,
    Tensor,
)
from workers.imaging.readers import sniff
from workers.runtime.oip import InferResponse

router = APIRouter(tags=["medvae"])
Schema = TypeVar("Schema", bound=BaseModel)

IMAGE_KINDS = ("png", "jpeg", "dicom", "nifti", "npy")
LATENT_KINDS = ("npy", "safetensors", "nifti")
JSON_FIELDS = ("tensor", "spacing", "value_range", "affine")
DTYPES = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "UINT8": np.uint8,
          "UINT16": np.uint16, "INT16": np.int16, "INT32": np.int32}  # fmt: skip


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


async def _parse(
    request: Request, schema: type[Schema], b64_field: str
) -> tuple[Schema, bytes | None]:
    """The body as `schema` plus the file bytes (from a multipart `file` part or base64)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw_file: bytes | None = None
    if content_type == "multipart/form-data":
        form = await request.form()
        fields: dict[str, Any] = {}
        for key, value in form.multi_items():
            if hasattr(value, "read"):
                if key != "file":
                    raise InvalidInput(f"send the file in a part named 'file', not '{key}'")
                raw_file = await value.read()
            elif key in JSON_FIELDS:
                try:
                    fields[key] = json.loads(value)
                except ValueError:
                    raise InvalidInput(f"form field '{key}' must be JSON") from None
            else:
                fields[key] = value
        if raw_file is not None:
            fields[b64_field] = ""
    elif content_type in ("application/json", ""):
        try:
            fields = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise BadRequest("the body is not valid JSON") from None
        if not isinstance(fields, dict):
            raise BadRequest("the body must be a JSON object")
    else:
        raise UnsupportedMediaType("send application/json or multipart/form-data")
    try:
        body = schema.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise InvalidInput(f"{where}: {first.get('msg', 'invalid value')}") from None
    encoded = getattr(body, b64_field)
    if raw_file is None and encoded:
        try:
            raw_file = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"{b64_field} is not valid base64") from None
    if raw_file is not None and not raw_file:
        raise InvalidInput("the file is empty")
    return body, raw_file


def _check_model(models: ModelsDep, name: str) -> None:
    if models.manifest(name).family != "medvae":
        raise InvalidInput(f"model '{name}' is not a MedVAE model; use e.g. medvae-4-1-2d")


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
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": EncodeRequest.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            }
        }
    },
)
async def encode(request: Request, models: ModelsDep, request_id: RequestIdDep) -> Any:
    body, raw = await _parse(request, EncodeRequest, "image_base64")
    _check_model(models, body.model)
    if raw is not None:
        if sniff(raw) not in IMAGE_KINDS:
            raise InvalidInput(
                "the file is not a supported image: send PNG, JPEG, single-frame DICOM or NIfTI"
            )
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
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": DecodeRequest.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            }
        }
    },
)
async def decode(request: Request, models: ModelsDep, request_id: RequestIdDep) -> Any:
    body, raw = await _parse(request, DecodeRequest, "latent_base64")
    _check_model(models, body.model)
    manifest = models.manifest(body.model)
    fmt = body.format or ("nifti" if manifest.input.dims == 3 else "png")
    if raw is not None:
        if sniff(raw) not in LATENT_KINDS:
            raise InvalidInput("the latent file is not .npy, safetensors or NIfTI data")
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
