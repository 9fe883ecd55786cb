"""Routes: the served models, with manifest facts, readiness and the weights that serve them."""

from __future__ import annotations

import time

from fastapi import APIRouter, Path

from core.errors import ModelNotFound
from service.deps import ModelsDep, SettingsDep
from service.model_router import ModelRoute, ModelRouter
from service.replicas import describe
from service.routes.openai import llm_names
from service.schemas.models import ModelInfo, ModelList, OpenAIModel, ReplicaInfo, WeightsInfo

router = APIRouter(prefix="/v1", tags=["models"])


STARTED = int(time.time())


def replicas(models: ModelRouter, route: ModelRoute) -> list[ReplicaInfo]:
    devices = models.devices()
    return [ReplicaInfo(**describe(r, devices.get(r.url))) for r in route.replicas]


def _info(models: ModelRouter, route: ModelRoute) -> ModelInfo:
    manifest = models.manifests.get(route.name)
    metadata = route.metadata or {}
    params = metadata.get("parameters") or {}
    info = ModelInfo(
        id=route.name,
        created=STARTED,
        name=route.name,
        engine=route.engine,
        ready=route.ready,
        state=route.state,
        reason=route.reason,
        weights=WeightsInfo(kind=params.get("weights"), digest=params.get("weights_digest")),
        replicas=replicas(models, route),
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
async def list_models(models: ModelsDep, settings: SettingsDep) -> ModelList:
    llms = set(llm_names(models, settings))
    routes = models.snapshot().values()
    data = [OpenAIModel(id=r.name, created=STARTED, owned_by="medserve" if r.engine == "worker"
                        else r.engine) for r in routes if r.name in llms]  # fmt: skip
    return ModelList(data=data, models=[_info(models, route) for route in routes])


@router.get(
    "/models/{name}",
    response_model=ModelInfo,
    summary="One served model: manifest facts, readiness, weights",
    responses={404: {"description": "The model is not served here."}},
)
async def get_model(
    models: ModelsDep, name: str = Path(description="A served model.", examples=["echo"])
) -> ModelInfo:
    route = models.routes.get(name)
    if route is None:
        raise ModelNotFound(f"model '{name}' is not served here; served models: {models.served()}")
    return _info(models, route)
