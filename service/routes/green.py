"""Routes: GREEN. `POST /v1/green/score` judges candidate radiology reports against references
with the GREEN model on a worker (RadEval's prompt, decoding and scoring, applied there)."""

from __future__ import annotations

from statistics import fmean

import numpy as np
from fastapi import APIRouter

from service.deps import ModelsDep, RequestIdDep
from service.schemas.green import Judgement, ScoreRequest, ScoreResponse
from workers.green.contract import SUB_CATEGORIES

router = APIRouter(tags=["green"])


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@router.post(
    "/v1/green/score",
    response_model=ScoreResponse,
    summary="Judge a candidate radiology report against a reference (GREEN, RadEval's metric)",
)
async def score_route(
    body: ScoreRequest, models: ModelsDep, request_id: RequestIdDep
) -> ScoreResponse:
    models.manifest(body.model, family="green")
    pairs = body.all_pairs()
    inputs = {
        "reference": np.array([p.reference.encode() for p in pairs], dtype=object),
        "candidate": np.array([p.candidate.encode() for p in pairs], dtype=object),
    }
    answer = await models.infer(
        body.model, inputs, {"max_words": body.max_words}, request_id=request_id or None
    )
    out = answer.outputs
    results = [
        Judgement(
            green=float(out["green"][i]),
            matched_findings=int(out["matched_findings"][i]),
            significant_errors=dict(
                zip(SUB_CATEGORIES, map(int, out["significant_errors"][i]), strict=True)
            ),
            insignificant_errors=dict(
                zip(SUB_CATEGORIES, map(int, out["insignificant_errors"][i]), strict=True)
            ),
            answer=_text(out["text"][i]),
            finish_reason=_text(out["finish_reason"][i]),
        )
        for i in range(len(pairs))
    ]
    info = answer.parameters
    return ScoreResponse(
        results=results,
        green=fmean(r.green for r in results),
        model=body.model,
        version=info.get("version"),
        weights=info.get("weights"),
        weights_digest=info.get("weights_digest"),
        max_words=body.max_words,
    )
