"""Request and response bodies of the job API (`/v1/jobs`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobCreate(BaseModel):
    """Submit a job: its type and that type's parameters (see docs/jobs.md)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"type": "sleep", "params": {"items": 3, "item_ms": 10}}]},
    )

    type: str = Field(..., description="A job type (see docs/jobs.md)", examples=["sleep"])
    params: dict[str, Any] = Field(default_factory=dict, description="The job type's parameters.")
    idempotency_key: str | None = Field(
        None, description="Same key (per tenant) returns the same job; or send `Idempotency-Key`."
    )


class JobProgress(BaseModel):
    done: int = Field(..., description="Items finished (committed shards plus the current one).")
    total: int = Field(..., description="Items planned; 0 until the runner has planned the job.")
    fraction: float
    shards_done: int
    shards_total: int
    rate_per_s: float = Field(..., description="Items per second of the current attempt.")
    eta_s: float | None = Field(None, description="Seconds left at the current rate.")
    detail: dict[str, Any] = Field(
        default_factory=dict,
        description="Job-specific progress; training jobs: stage, epoch/epochs, step/steps, "
        "loss (last step), val_auroc (latest validation mean AUROC).",
    )


class JobView(BaseModel):
    """The job record as a client sees it."""

    id: str
    type: str
    state: JobState
    params: dict[str, Any]
    progress: JobProgress
    attempt: int = Field(..., description="How many times a runner has started it (1 = no resume).")
    cancel_requested: bool
    created_at: float
    started_at: float | None
    updated_at: float
    finished_at: float | None
    error: str | None
    summary: dict[str, Any]
    links: dict[str, str]

    @classmethod
    def from_record(cls, job: Any) -> JobView:
        done = min(job.done + (job.partial if job.state == "running" else 0), job.total or 1 << 62)
        return cls(
            id=job.id,
            type=job.type,
            state=job.state,
            params=job.params,
            progress=JobProgress(
                done=done,
                total=job.total,
                fraction=round(done / job.total, 4) if job.total else 0.0,
                shards_done=job.shards_done,
                shards_total=job.shards_total,
                rate_per_s=job.rate,
                eta_s=job.eta_s,
                detail=job.detail,
            ),
            attempt=job.attempt,
            cancel_requested=job.cancel_requested,
            created_at=job.created_at,
            started_at=job.started_at,
            updated_at=job.updated_at,
            finished_at=job.finished_at,
            error=job.error,
            summary=job.summary,
            links={
                "self": f"/v1/jobs/{job.id}",
                "events": f"/v1/jobs/{job.id}/events",
                "artifacts": f"/v1/jobs/{job.id}/artifacts",
                "cancel": f"/v1/jobs/{job.id}/cancel",
            },
        )


class JobList(BaseModel):
    jobs: list[JobView]
    next_offset: int | None = Field(None, description="Pass as `offset` for the next page.")


class Artifact(BaseModel):
    path: str
    size: int
    url: str


class ArtifactList(BaseModel):
    job_id: str
    state: JobState
    artifacts: list[Artifact]
