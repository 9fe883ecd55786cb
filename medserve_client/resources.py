"""Typed results of the platform routes: models, readiness, jobs, job events and artifacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class ModelInfo:
    """A served model: manifest facts, live state, and the weights the worker loaded."""

    name: str
    family: str | None
    version: str | None
    engine: str
    ready: bool
    state: str
    reason: str | None
    weights: str | None
    weights_digest: str | None
    description: str
    license: str | None
    input: dict[str, Any]
    defaults: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ModelInfo:
        weights = raw.get("weights") or {}
        return cls(
            name=raw["name"], family=raw.get("family"), version=raw.get("version"),
            engine=raw.get("engine", "worker"), ready=bool(raw.get("ready")),
            state=raw.get("state", "UNKNOWN"), reason=raw.get("reason"),
            weights=weights.get("kind"), weights_digest=weights.get("digest"),
            description=raw.get("description", ""), license=raw.get("license"),
            input=raw.get("input") or {}, defaults=raw.get("defaults") or {}, raw=raw,
        )  # fmt: skip


def model_list(raw: dict[str, Any]) -> list[ModelInfo]:
    return [ModelInfo.from_json(m) for m in raw["models"]]


@dataclass(frozen=True)
class Readiness:
    """`/readyz`: ready when every routed model and engine is; why not, per model."""

    ready: bool
    models: dict[str, dict[str, Any]]
    dependencies: dict[str, dict[str, Any]]

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Readiness:
        return cls(bool(raw.get("ready")), raw.get("models") or {}, raw.get("dependencies") or {})

    def not_ready(self) -> dict[str, str]:
        """Model or dependency -> its state and reason, for those not ready."""
        out = {}
        for name, state in {**self.models, **self.dependencies}.items():
            if not state.get("ready"):
                out[name] = " ".join(str(v) for v in (state.get("state"), state.get("reason")) if v)
        return out


@dataclass(frozen=True)
class JobProgress:
    done: int
    total: int
    fraction: float
    shards_done: int
    shards_total: int
    rate_per_s: float
    eta_s: float | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class Job:
    """A job as the gateway reports it."""

    id: str
    type: str
    state: str
    params: dict[str, Any]
    progress: JobProgress
    attempt: int
    cancel_requested: bool
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    summary: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Job:
        p = raw["progress"]
        progress = JobProgress(
            p["done"], p["total"], p["fraction"], p["shards_done"], p["shards_total"],
            p["rate_per_s"], p.get("eta_s"), p.get("detail") or {},
        )  # fmt: skip
        return cls(
            id=raw["id"], type=raw["type"], state=raw["state"], params=raw.get("params") or {},
            progress=progress, attempt=raw.get("attempt", 0),
            cancel_requested=bool(raw.get("cancel_requested")), created_at=raw["created_at"],
            started_at=raw.get("started_at"), finished_at=raw.get("finished_at"),
            error=raw.get("error"), summary=raw.get("summary") or {}, raw=raw,
        )  # fmt: skip

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"


@dataclass(frozen=True)
class JobPage:
    """One page of `list_jobs`, newest first; pass `next_offset` as `offset` for the next."""

    jobs: list[Job]
    next_offset: int | None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> JobPage:
        return cls([Job.from_json(j) for j in raw["jobs"]], raw.get("next_offset"))


@dataclass(frozen=True)
class JobEvent:
    """One server-sent event of a job: `progress` (with the job) or `end`."""

    event: str
    job: Job | None
    data: dict[str, Any]

    @classmethod
    def parse(cls, event: str, data: dict[str, Any]) -> JobEvent:
        return cls(event, Job.from_json(data) if event == "progress" else None, data)


@dataclass(frozen=True)
class Artifact:
    path: str
    size: int
    url: str


@dataclass(frozen=True)
class Artifacts:
    """A job's output files so far."""

    job_id: str
    state: str
    artifacts: list[Artifact]

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Artifacts:
        items = [Artifact(a["path"], a["size"], a["url"]) for a in raw["artifacts"]]
        return cls(raw["job_id"], raw["state"], items)
