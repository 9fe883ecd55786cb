"""Routes: the served models, with manifest facts, readiness and the weights that serve them."""

from __future__ import annotations

from fastapi import APIRouter

from core.errors import ModelNotFound
from service.deps import ModelsDep
from service.model_router import ModelRoute, ModelRouter
from service.schemas.models import ModelInfo, ModelList, WeightsInfo

router = APIRouter(prefix="/v1", tags=["models"])


def _info(models: ModelRouter, route: ModelRoute) -> ModelInfo:
    manifest = models.manifests.get(route.name)
    metadata = route.metadata or {}
    params = metadata.get("parameters") or {}
    info = ModelInfo(
        name=route.name,
        ready=route.ready,
        state=route.state,
        reason=route.reason,
        weights=WeightsInfo(kind=params.get("weights"), digest=params.get("weights_digest")),
        inputs=list(metadata.get("inputs") or []),
        outputs=list(metadata.get("outputs") or []),
    )
    if manifest is not None:
        info.family = manifest.family
        info.version = manifest.version
        info.description = manifest.description.strip()
        info.license = manifest.license
        info.intended_use = manifest.intended_use
        info.input = manifest.input.model_dump(exclude_none=True)
        info.defaults = manifest.defaults
    elif metadata.get("versions"):
        info.version = str(metadata["versions"][-1])
    return info


@router.get("/models", response_model=ModelList, summary="Every model this gateway serves")
async def list_models(models: ModelsDep) -> ModelList:
    return ModelList(models=[_info(models, route) for route in models.snapshot().values()])


@router.get(
    "/models/{name}",
    response_model=ModelInfo,
    summary="One served model: manifest facts, readiness, weights",
    responses={404: {"description": "The model is not served here."}},
)
async def get_model(name: str, models: ModelsDep) -> ModelInfo:
    route = models.routes.get(name)
    if route is None:
        raise ModelNotFound(f"model '{name}' is not served here; served models: {models.served()}")
    return _info(models, route)
