"""Routes: MedVAL. `POST /v1/medval/evaluate` grades generated medical text against its source.

The engine is vLLM when `vllm_base_url` is set, else the in-process model on a worker. Prompt
building and answer parsing are the family's torch-free helpers, so both engines behave the
same. In the batch form an item the model cannot grade carries its own error.
"""

from __future__ import annotations

from fastapi import APIRouter

from core.errors import UpstreamError
from service.deps import LLMDep, ModelsDep, RequestIdDep, SettingsDep
from service.schemas.medval import (
    BatchEvaluateResponse,
    ErrorFound,
    EvaluateItem,
    EvaluateRequest,
    EvaluateResponse,
    Evaluation,
)
from workers.medval.evaluate import (
    EvalItem,
    GenerationOptions,
    MedVALEngine,
    Outcome,
    VLLMEngine,
    WorkerEngine,
    evaluate,
)
from workers.medval.tasks import TASK_PROMPTS

router = APIRouter(tags=["medval"])


def _result(outcome: Outcome, item: EvaluateItem) -> Evaluation:
    graded = outcome.evaluation
    if graded is None:
        return Evaluation(task=item.task, constrained=outcome.constrained, error=outcome.error)
    return Evaluation(
        risk_level=graded.risk_level,
        risk_label=graded.risk_label,
        errors=[ErrorFound(category=e.category, text=e.text) for e in graded.errors],
        reasoning=graded.reasoning,
        task=item.task,
        constrained=outcome.constrained,
    )


@router.post(
    "/v1/medval/evaluate",
    response_model=EvaluateResponse | BatchEvaluateResponse,
    summary="Grade a generated medical text against its reference (MedVAL risk 1-4)",
)
async def evaluate_route(
    body: EvaluateRequest,
    settings: SettingsDep,
    models: ModelsDep,
    llm: LLMDep,
    request_id: RequestIdDep,
) -> EvaluateResponse | BatchEvaluateResponse:
    manifest = models.manifest(body.model, family="medval")
    engine: MedVALEngine
    if llm is not None:
        engine = VLLMEngine(llm, settings.vllm_model or body.model)
    else:
        models.route(body.model)  # ModelNotFound / ModelNotReady before any work
        engine = WorkerEngine(models, body.model, request_id=request_id or None)
    items = body.all_items()
    options = GenerationOptions(body.max_tokens, body.temperature, body.enable_thinking)
    graded = [
        EvalItem(TASK_PROMPTS[i.task] if i.task else str(i.instruction), i.reference, i.candidate)
        for i in items
    ]
    outcomes = await evaluate(engine, graded, options, constrained=body.constrained)
    results = [_result(o, i) for o, i in zip(outcomes, items, strict=True)]
    provenance = {"model": body.model, "version": manifest.version, **(await engine.provenance())}
    if body.items is None:
        if results[0].error is not None:
            raise UpstreamError(results[0].error)
        return EvaluateResponse(**results[0].model_dump(), **provenance)
    return BatchEvaluateResponse(results=results, **provenance)
