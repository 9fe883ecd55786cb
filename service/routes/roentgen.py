"""Routes: RoentGen-v2. `POST /v1/roentgen/generate`: text and demographics to chest X-rays.

The gateway validates the body, renders the released prompt template and asks the worker for
`n` images; the worker refuses over-long prompts (422) and returns each image as a PNG, DICOM
or .npy file already labelled synthetic with its provenance.
"""

from __future__ import annotations

import base64
import json

import numpy as np
from fastapi import APIRouter

from core.errors import InvalidInput, UpstreamError
from service.deps import ModelsDep, RequestIdDep
from service.schemas.roentgen import GeneratedImage, GenerateRequest, GenerateResponse

router = APIRouter(tags=["roentgen"])


@router.post(
    "/v1/roentgen/generate",
    response_model=GenerateResponse,
    summary="Generate synthetic chest X-rays from a prompt or demographics + impression",
)
async def generate(
    body: GenerateRequest, models: ModelsDep, request_id: RequestIdDep
) -> GenerateResponse:
    manifest = models.manifest(body.model)
    if manifest.family != "roentgen":
        raise InvalidInput(f"model '{body.model}' is not a roentgen model; send roentgen-v2")
    prompt = body.text()
    result = await models.infer(
        body.model,
        {"prompt": np.array([prompt.encode("utf-8")] * body.n, dtype=object)},
        body.worker_parameters(),
        request_id=request_id or None,
        outputs=["FILE", "seed"],
    )
    try:
        files = [bytes(f) for f in np.asarray(result.outputs["FILE"]).reshape(-1)]
        seeds = [int(s) for s in np.asarray(result.outputs["seed"]).reshape(-1)]
        record = json.loads(result.parameters["provenance"])
        media_type = str(result.parameters["media_type"])
    except (KeyError, TypeError, ValueError):
        raise UpstreamError("the worker's answer lacks files, seeds or provenance") from None
    if len(files) != body.n or len(seeds) != body.n:
        raise UpstreamError(f"the worker returned {len(files)} images for n={body.n}")
    record.pop("prompts", None)
    images = [
        GeneratedImage(
            index=i, seed=seed, media_type=media_type,
            data_base64=base64.b64encode(data).decode("ascii"),
        )
        for i, (data, seed) in enumerate(zip(files, seeds, strict=True))
    ]  # fmt: skip
    return GenerateResponse(
        model=record.get("model", body.model),
        version=str(record.get("version", manifest.version)),
        weights=str(record.get("weights", "unknown")),
        weights_digest=record.get("weights_digest"),
        synthetic=True,
        prompt=prompt,
        images=images,
        provenance={**record, "prompt": prompt},
    )
