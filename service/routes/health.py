"""Routes: liveness, readiness (every routed model and engine ready) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.deps import ModelsDep, ReadinessDep
from service.routes.models import replicas
from service.schemas.models import DependencyState, ModelState, Readiness

router = APIRouter(tags=["health"])


@router.get("/livez", summary="Liveness: the gateway process answers")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: 200 when every routed model and engine is ready, else 503",
    responses={503: {"model": Readiness, "description": "Some model is not ready yet."}},
)
async def readyz(models: ModelsDep, readiness: ReadinessDep) -> Response:
    body = Readiness(
        ready=readiness.ready(),
        models={
            name: ModelState(
                ready=route.ready,
                state=route.state,
                reason=route.reason,
                replicas=replicas(models, route),
            )
            for name, route in models.snapshot().items()
        },
        dependencies={
            name: DependencyState(ready=dep.ready, reason=dep.reason)
            for name, dep in readiness.dependencies.items()
        },
    )
    return Response(
        body.model_dump_json(), 200 if body.ready else 503, media_type="application/json"
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    gateway_metrics = request.app.state.metrics
    return Response(gateway_metrics.render(), media_type=gateway_metrics.content_type)
