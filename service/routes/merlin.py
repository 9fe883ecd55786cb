"""Routes: Merlin. `POST /v1/merlin/analyze` (a CT -> embedding, phenotypes, findings, five-year
risk), `POST /v1/merlin/embed-text` (report texts -> embeddings), `POST /v1/merlin/report`
(a CT -> one generated text per organ system).

The gateway checks cheap things (schema, model family and kind, the file's magic bytes) and
sends the raw file to the workers as an OIP `BYTES` input; the workers decode, preprocess and
label. `analyze` calls the clip model and, for five_year, the five-year model, concurrently.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
from typing import Any, TypeVar

import numpy as np
import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError

from core.errors import BadRequest, InvalidInput, Unavailable, UnsupportedMediaType
from core.validation import describe
from service.deps import ModelsDep, RequestIdDep
from service.model_router import ModelRouter
from service.schemas.merlin import (
    AnalyzeRequest,
    AnalyzeResponse,
    EmbedTextRequest,
    EmbedTextResponse,
    ReportRequest,
    ReportResponse,
    inline_schema,
)
from workers.merlin.contract import (
    CLIP_TASKS,
    CT_FILE_HELP,
    TASKS,
    ClipParams,
    ReportParams,
    ct_file_kind,
)
from workers.runtime.oip import InferResponse

router = APIRouter(tags=["merlin"])
Schema = TypeVar("Schema", bound=BaseModel)
LIST_FIELDS = ("tasks", "findings", "findings_prompts", "organ_systems")
NPY = "application/x-npy"
PROVENANCE = ("model", "version", "weights", "weights_digest")


def _form_value(key: str, value: str) -> Any:
    """A multipart field: list fields as JSON or comma-separated text."""
    if key not in LIST_FIELDS:
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            raise InvalidInput(f"form field '{key}' is not valid JSON") from None
    if key == "findings_prompts":
        raise InvalidInput("form field 'findings_prompts' must be a JSON list of findings")
    return [part.strip() for part in text.split(",") if part.strip()]


async def _parse(request: Request, schema: type[Schema]) -> tuple[Schema, bytes]:
    """The body as `schema` and the CT bytes (a multipart `file` part or `image_base64`)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw: bytes | None = None
    if content_type == "multipart/form-data":
        form = await request.form()
        fields: dict[str, Any] = {}
        for key, value in form.multi_items():
            if hasattr(value, "read"):
                if key != "file":
                    raise InvalidInput(f"send the CT in a part named 'file', not '{key}'")
                raw = await value.read()
            else:
                fields[key] = _form_value(key, str(value))
        if raw is not None:
            fields["image_base64"] = ""
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
        raise InvalidInput(describe(exc, schema, what="field")) from None
    if raw is None:
        try:
            raw = base64.b64decode(getattr(body, "image_base64", None) or "", validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("image_base64 is not valid base64") from None
    if not raw:
        raise InvalidInput("the CT file is empty")
    if ct_file_kind(raw) is None:
        raise InvalidInput(f"the file is not a CT volume Merlin reads: {CT_FILE_HELP}")
    return body, raw


def _check_kind(models: ModelRouter, name: str, kind: str) -> None:
    manifest = models.manifest(name, family="merlin")
    if manifest.adapter.get("kind") != kind:
        same = sorted(n for n, m in models.manifests.items()
                      if m.family == "merlin" and m.adapter.get("kind") == kind)  # fmt: skip
        raise InvalidInput(
            f"model '{name}' is Merlin's {manifest.adapter.get('kind')} model; this route needs "
            f"the {kind} model: {', '.join(same) or 'none'}"
        )


def _hosted(models: ModelRouter, name: str, what: str) -> None:
    """503 saying how to enable `what` when `name` is not hosted, or refused by its worker."""
    manifest = models.manifest(name, family="merlin")
    needs = manifest.resources
    device = "a GPU" if not needs.cpu_ok else "a GPU or the CPU"
    if not models.known(name):
        raise Unavailable(
            f"{what} is not enabled on this deployment: model '{name}' is not hosted. It needs "
            f"{device} with at least {needs.min_gpu_memory_gb:g} GB; add {name} to "
            "MEDSERVE_MODELS of a worker that has it (see docs/merlin.md)"
        )
    route = models.routes[name]
    if not route.ready and route.state == "UNAVAILABLE" and route.reason:
        raise Unavailable(f"{what} is unavailable: {route.reason}")


def _ct(raw: bytes) -> dict[str, np.ndarray]:
    return {"IMAGE": np.array([raw], dtype=np.object_)}


def _document(result: InferResponse) -> dict[str, Any]:
    value = np.asarray(result.outputs["RESULT"]).reshape(-1)[0]
    return dict(json.loads(bytes(value)))


def _vector(result: InferResponse, name: str, file_index: int, normalised: bool) -> dict:
    if "FILE" in result.outputs:
        data = bytes(np.asarray(result.outputs["FILE"]).reshape(-1)[file_index])
        dim = int(np.load(io.BytesIO(data)).shape[-1])
        encoded = base64.b64encode(data).decode()
        return {"dim": dim, "normalised": normalised, "data_base64": encoded, "media_type": NPY}
    values = np.asarray(result.outputs[name], dtype=np.float32).reshape(-1)
    return {"dim": int(values.size), "normalised": normalised, "values": values.tolist()}


def _plan(models: ModelRouter, body: AnalyzeRequest) -> tuple[list[str], dict[str, str]]:
    """The tasks to run, and those skipped (five_year by default when its model is absent)."""
    tasks = list(dict.fromkeys(body.tasks or TASKS))
    skipped: dict[str, str] = {}
    if "five_year" in tasks:
        if body.tasks is None and not models.known(body.five_year_model):
            tasks.remove("five_year")
            skipped["five_year"] = (
                f"model '{body.five_year_model}' is not hosted here; add it to MEDSERVE_MODELS "
                "to get five-year risks"
            )
        else:
            _check_kind(models, body.five_year_model, "five_year")
            _hosted(models, body.five_year_model, "the five_year task")
    return tasks, skipped


@router.post(
    "/v1/merlin/analyze",
    response_model=AnalyzeResponse,
    response_model_exclude_none=True,
    summary="Analyse a 3D CT: embedding, phenotypes, zero-shot findings, five-year risk",
    openapi_extra={"requestBody": {"content": {
        "application/json": {"schema": inline_schema(AnalyzeRequest)},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary",
                     "description": "The CT: .nii, .nii.gz or a .zip of one DICOM series."},
            "tasks": {"type": "string", "description": "e.g. embedding,phenotypes"},
            "top_k": {"type": "string"}, "findings": {"type": "string"},
            "findings_prompts": {"type": "string", "description": "JSON list"},
            "embedding_format": {"type": "string"},
        }}},
    }}},
)  # fmt: skip
async def analyze(request: Request, models: ModelsDep, request_id: RequestIdDep) -> Any:
    body, raw = await _parse(request, AnalyzeRequest)
    _check_kind(models, body.model, "clip")
    tasks, skipped = _plan(models, body)
    clip_tasks = [t for t in tasks if t in CLIP_TASKS]
    calls = []
    if clip_tasks:
        params = ClipParams.from_oip({"tasks": clip_tasks, "top_k": body.top_k,
                                      "findings": body.findings,
                                      "findings_prompts": body.findings_prompts,
                                      "embedding_format": body.embedding_format})  # fmt: skip
        calls.append(models.infer(body.model, _ct(raw), params.to_oip(), request_id=request_id))
    if "five_year" in tasks:
        calls.append(models.infer(body.five_year_model, _ct(raw), {}, request_id=request_id))
    results = await asyncio.gather(*calls)
    docs = [_document(r) for r in results]
    answer: dict[str, Any] = {
        **{k: docs[0].get(k) for k in PROVENANCE},
        "machine_generated": True,
        "tasks": tasks,
        "preprocessing": docs[0]["preprocessing"],
        "skipped": skipped,
    }
    if clip_tasks:
        clip, doc = results[0], docs[0]
        if "embedding" in clip_tasks:
            answer["embedding"] = {"format": body.embedding_format,
                                   "contrastive": _vector(clip, "EMBEDDING", 0, True),
                                   "features": _vector(clip, "FEATURES", 1, False)}  # fmt: skip
        if "phenotypes" in clip_tasks:
            items = doc["phenotypes"]
            answer["phenotypes"] = {"top_k": len(items), "total": 1692, "items": items}
        if "findings" in clip_tasks:
            answer["findings"] = {"items": doc.get("findings", [])}
    if "five_year" in tasks:
        five = docs[-1]
        answer["five_year"] = {**{k: five.get(k) for k in PROVENANCE}, "items": five["five_year"]}
    return answer


@router.post(
    "/v1/merlin/embed-text",
    response_model=EmbedTextResponse,
    response_model_exclude_none=True,
    summary="Embed report texts with Merlin's text encoder (512-d, L2-normalised)",
)
async def embed_text(body: EmbedTextRequest, models: ModelsDep, request_id: RequestIdDep) -> Any:
    _check_kind(models, body.model, "clip")
    texts = body.all_texts()
    inputs = {"TEXT": np.array([t.encode() for t in texts], dtype=np.object_)}
    params = {"embedding_format": body.format}
    result = await models.infer(body.model, inputs, params, request_id=request_id)
    doc = _document(result)
    answer: dict[str, Any] = {
        **{k: doc.get(k) for k in PROVENANCE},
        "dim": int(result.parameters.get("dim", 512)),
        "format": body.format,
        "texts": doc["texts"],
        "preprocessing": doc["preprocessing"],
    }
    if body.format == "npy":
        data = bytes(np.asarray(result.outputs["FILE"]).reshape(-1)[0])
        answer["data_base64"] = base64.b64encode(data).decode()
    else:
        answer["embeddings"] = np.asarray(result.outputs["TEXT_EMBEDDING"]).tolist()
    return answer


@router.post(
    "/v1/merlin/report",
    response_model=ReportResponse,
    response_model_exclude_none=True,
    summary="Generate a radiology report from a 3D CT (one text per organ system)",
    openapi_extra={"requestBody": {"content": {
        "application/json": {"schema": inline_schema(ReportRequest)},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary",
                     "description": "The CT: .nii, .nii.gz or a .zip of one DICOM series."},
            "organ_systems": {"type": "string", "description": "e.g. liver,kidneys"},
            "max_new_tokens": {"type": "string"}, "repetition_penalty": {"type": "string"},
        }}},
    }}},
)  # fmt: skip
async def report(request: Request, models: ModelsDep, request_id: RequestIdDep) -> Any:
    body, raw = await _parse(request, ReportRequest)
    _check_kind(models, body.model, "report")
    _hosted(models, body.model, "report generation")
    params = ReportParams.from_oip({"organ_systems": body.organ_systems,
                                    "max_new_tokens": body.max_new_tokens,
                                    "repetition_penalty": body.repetition_penalty})  # fmt: skip
    result = await models.infer(body.model, _ct(raw), params.to_oip(), request_id=request_id)
    doc = _document(result)
    keep = ("organ_systems", "report", "generation", "preprocessing", *PROVENANCE)
    return {**{k: doc.get(k) for k in keep}, "machine_generated": True}
