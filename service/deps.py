"""Annotated dependencies the routes declare: settings, tenant, request id and the model router."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.settings import Settings
from service.routing import ModelRouter


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_models(request: Request) -> ModelRouter:
    router: ModelRouter = request.app.state.models
    return router


def get_tenant(request: Request) -> str:
    """The tenant of the request's API key; "default" when auth is off."""
    return str(request.scope.get("state", {}).get("tenant") or "default")


def get_request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id") or "")


SettingsDep = Annotated[Settings, Depends(get_settings)]
ModelsDep = Annotated[ModelRouter, Depends(get_models)]
TenantDep = Annotated[str, Depends(get_tenant)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
