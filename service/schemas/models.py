"""Response schemas of `/v1/models`, `/v1/models/{name}` and `/readyz`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class WeightsInfo(BaseModel):
    kind: str | None = Field(
        None, description="pulled | random-tiny | random-full, as the worker reports it."
    )
    digest: str | None = Field(None, description="sha256 over the weight files.")


class ReplicaInfo(BaseModel):
    """One worker serving the model: requests are balanced over the ready ones."""

    url: str = Field(description="The worker's base URL (a pod address in a cluster).")
    device: str | None = Field(None, description="Where `serve` placed it (cuda:N or cpu).")
    ready: bool
    state: str
    reason: str | None = None
    inflight: int = Field(0, description="Requests sent to it and not answered yet.")
    requests: int = Field(0, description="Requests this gateway sent to it.")
    failures: int = Field(0, description="Requests it refused or dropped (retried elsewhere).")


class OpenAIModel(BaseModel):
    """A model as OpenAI clients list it (`client.models.list()`)."""

    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "medserve"


class ModelInfo(BaseModel):
    """Manifest facts of a served model plus its live state (and OpenAI's model fields)."""

    id: str = Field(description="The model's name (as OpenAI clients read it).")
    object: str = "model"
    created: int = 0
    owned_by: str = "medserve"
    name: str
    engine: str = Field("worker", description="worker (OIP) or vllm.")
    family: str | None = None
    version: str | None = None
    description: str = ""
    license: str | None = None
    intended_use: str = ""
    input: dict[str, Any] = Field(default_factory=dict, description="The input contract.")
    defaults: dict[str, Any] = Field(default_factory=dict)
    ready: bool
    state: str = Field(description="READY, LOADING, UNAVAILABLE or UNKNOWN.")
    reason: str | None = None
    weights: WeightsInfo = Field(default_factory=WeightsInfo)
    replicas: list[ReplicaInfo] = Field(
        default_factory=list, description="The workers serving it (the placement in effect)."
    )
    inputs: list[dict[str, Any]] = Field(default_factory=list, description="OIP input tensors.")
    outputs: list[dict[str, Any]] = Field(default_factory=list, description="OIP output tensors.")


class ModelList(BaseModel):
    """Every served model (`models`), and the LLMs in OpenAI's shape (`object`, `data`), so
    OpenAI clients pointed at this base URL list them."""

    object: str = "list"
    data: list[OpenAIModel] = Field(description="The LLMs, for OpenAI-compatible clients.")
    models: list[ModelInfo]


class ModelState(BaseModel):
    ready: bool = Field(description="At least one replica takes requests.")
    state: str
    reason: str | None = None
    replicas: list[ReplicaInfo] = Field(default_factory=list)


class DependencyState(BaseModel):
    ready: bool
    reason: str | None = None


class Readiness(BaseModel):
    ready: bool
    models: dict[str, ModelState]
    dependencies: dict[str, DependencyState] = Field(
        default_factory=dict, description="vLLM and Redis, when configured."
    )
