"""Routes: MedVAL. `POST /v1/medval/evaluate` grades generated medical text against its source.

The engine is vLLM when `vllm_base_url` is set, else the in-process model on a worker. Prompt
building and answer parsing happen here (pure Python) so both engines behave the same.
"""

from __future__ import annotations

from fastapi import APIRouter

from core.settings import Settings
from service.deps import ModelsDep, RequestIdDep, SettingsDep
from service.schemas.medval import (
    BatchEvaluateResponse,
    ErrorFound,
    EvaluateRequest,
    EvaluateResponse,
    Evaluation,
)
from workers.medval.engines_tmp import GenerationOptions, MedVALEngine, VLLMEngine, WorkerEngine
from workers.medval.evaluator import EvalItem, Outcome, evaluate
from workers.medval.prompt import resolve_instruction

MODEL = "medval-4b"

router = APIRouter(tags=["medval"])


def engine_for(settings: Settings, models: ModelsDep, request_id: str) -> MedVALEngine:
    if settings.vllm_base_url:
        return VLLMEngine(
            models.session,
            settings.vllm_base_url,
            settings.vllm_model or MODEL,
            settings.vllm_api_key,
            settings.upstream_timeout_s,
        )
    models.route(MODEL)  # ModelNotFound / ModelNotReady before any work
    return WorkerEngine(models, MODEL, request_id=request_id or None)


def _result(outcome: Outcome, task: str | None) -> Evaluation:
    graded = outcome.evaluation
    return Evaluation(
        risk_level=graded.risk_level,
        risk_label=graded.risk_label,
        errors=[ErrorFound(category=e.category, text=e.text) for e in graded.errors],
        reasoning=graded.reasoning,
        task=task,
        constrained=outcome.constrained,
    )


@router.post(
    "/v1/medval/evaluate",
    response_model=EvaluateResponse | BatchEvaluateResponse,
    summary="Grade a generated medical text against its reference (MedVAL risk 1-4)",
)
async def evaluate_route(
    body: EvaluateRequest, settings: SettingsDep, models: ModelsDep, request_id: RequestIdDep
) -> EvaluateResponse | BatchEvaluateResponse:
    engine = engine_for(settings, models, request_id)
    items = body.all_items()
    resolved = [resolve_instruction(item.task) for item in items]
    options = GenerationOptions(body.max_tokens, body.temperature, body.enable_thinking)
    outcomes = await evaluate(
        engine,
        [EvalItem(r[0], i.reference, i.candidate) for r, i in zip(resolved, items, strict=True)],
        options,
        constrained=body.constrained,
    )
    results = [_result(o, r[1]) for o, r in zip(outcomes, resolved, strict=True)]
    version = models.manifests[MODEL].version if MODEL in models.manifests else "unknown"
    provenance = {"model": MODEL, "version": version, **(await engine.provenance())}
    if body.items is None:
        return EvaluateResponse(**results[0].model_dump(), **provenance)
    return BatchEvaluateResponse(results=results, **provenance)
