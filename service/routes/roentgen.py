"""Routes: RoentGen-v2. `POST /v1/roentgen/generate`: text and demographics to chest X-rays.

The gateway validates the body, renders the released prompt template, asks the worker for
`n` images (the worker's tokenizer refuses over-long prompts with a 422) and encodes each
image as PNG, DICOM or .npy, labelled synthetic with its provenance.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from core.errors import InvalidInput, UpstreamError
from service.deps import ModelsDep, RequestIdDep
from service.schemas.roentgen import GeneratedImage, GenerateRequest, GenerateResponse
from workers.imaging import synthetic

router = APIRouter(tags=["roentgen"])


def _encode_all(
    images: np.ndarray, seeds: list[int], fmt: str, common: dict[str, Any], prompts: list[str]
) -> list[GeneratedImage]:
    out = []
    for i, image in enumerate(images):
        record = {**common, "index": i, "seed": seeds[i], "prompt": prompts[i]}
        data = synthetic.encode(image, fmt, record, instance=i + 1)
        out.append(
            GeneratedImage(
                index=i,
                seed=seeds[i],
                media_type=synthetic.MEDIA_TYPES[fmt],
                data_base64=base64.b64encode(data).decode("ascii"),
            )
        )
    return out


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
        outputs=["image", "seed"],
    )
    try:
        images = np.asarray(result.outputs["image"], dtype=np.uint8)
        seeds = [int(s) for s in np.asarray(result.outputs["seed"]).reshape(-1)]
        record = json.loads(result.parameters["provenance"])
    except (KeyError, TypeError, ValueError):
        raise UpstreamError("the worker's answer lacks image, seed or provenance") from None
    if len(images) != body.n or len(seeds) != body.n:
        raise UpstreamError(f"the worker returned {len(images)} images for n={body.n}")
    prompts = record.pop("prompts", [prompt] * body.n)
    record.pop("seeds", None)
    encoded = await run_in_threadpool(_encode_all, images, seeds, body.output, record, prompts)
    return GenerateResponse(
        model=record.get("model", body.model),
        version=str(record.get("version", manifest.version)),
        weights=str(record.get("weights", "unknown")),
        weights_digest=record.get("weights_digest"),
        synthetic=True,
        prompt=prompt,
        images=encoded,
        provenance={**record, "seeds": seeds, "prompt": prompt},
    )
