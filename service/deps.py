"""Annotated dependencies the routes declare: settings, tenant, request id and the model router."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.errors import Unavailable
from core.settings import GatewaySettings
from service.model_router import ModelRouter
from service.readiness import Readiness
from workers.jobs.control import JobControl
from workers.runtime.llm_client import LLMClient


def get_settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


def get_models(request: Request) -> ModelRouter:
    router: ModelRouter = request.app.state.models
    return router


def get_readiness(request: Request) -> Readiness:
    readiness: Readiness = request.app.state.readiness
    return readiness


def get_jobs(request: Request) -> JobControl:
    """The job API, or 503 when this gateway has no Redis."""
    control: JobControl | None = request.app.state.jobs
    if control is None:
        raise Unavailable("jobs need Redis: set MEDSERVE_REDIS_URL (or run `medserve serve`)")
    return control


def get_llm(request: Request) -> LLMClient | None:
    """The configured vLLM engine's client, or None."""
    llm: LLMClient | None = request.app.state.llm
    return llm


def get_tenant(request: Request) -> str:
    """The tenant of the request's API key; "default" when auth is off."""
    return str(request.scope.get("state", {}).get("tenant") or "default")


def get_request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id") or "")


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
ModelsDep = Annotated[ModelRouter, Depends(get_models)]
ReadinessDep = Annotated[Readiness, Depends(get_readiness)]
JobsDep = Annotated[JobControl, Depends(get_jobs)]
LLMDep = Annotated[LLMClient | None, Depends(get_llm)]
TenantDep = Annotated[str, Depends(get_tenant)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
