"""Routes: batch jobs (`/v1/jobs`): submit, list, read, cancel, progress events, artifacts.

Thin: `workers.jobs.control.JobControl` does the work against Redis; every call is scoped to
the caller's tenant (another tenant's job answers 404).
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from core.errors import InvalidInput
from service.deps import JobsDep, TenantDep
from service.schemas.jobs import Artifact, ArtifactList, JobCreate, JobList, JobView
from workers.jobs.records import STATES

router = APIRouter(tags=["jobs"])
JobId = Annotated[
    str,
    Path(
        description="The id POST /v1/jobs returned.", examples=["3f2b9c1e6d4a4f0e9b7c2a1d5e8f6a0b"]
    ),
]
ArtifactPath = Annotated[
    str, Path(description="A path from GET /v1/jobs/{job_id}/artifacts.", examples=["items.jsonl"])
]
EVENT_POLL_S = 0.25
KEEPALIVE_S = 15.0


@router.post("/v1/jobs", status_code=202, response_model=JobView)
def submit_job(
    body: JobCreate,
    jobs: JobsDep,
    tenant: TenantDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JobView:
    """Queue a job; the same idempotency key returns the same job (header `Idempotent-Replayed`)."""
    job, created = jobs.submit(
        tenant, body.type, body.params, idempotency_key or body.idempotency_key
    )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return JobView.from_record(job)


@router.get("/v1/jobs", response_model=JobList)
def list_jobs(
    jobs: JobsDep,
    tenant: TenantDep,
    state: str | None = Query(
        None, description="queued | running | succeeded | failed | cancelled"
    ),
    type: str | None = Query(None, description="Only jobs of this type."),
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=500),
) -> JobList:
    """Your jobs, newest first."""
    if state is not None and state not in STATES:
        raise InvalidInput(f"state must be one of {', '.join(STATES)}")
    page, next_offset = jobs.list(tenant, state=state, job_type=type, offset=offset, limit=limit)
    return JobList(jobs=[JobView.from_record(j) for j in page], next_offset=next_offset)


@router.get("/v1/jobs/{job_id}", response_model=JobView)
def get_job(job_id: JobId, jobs: JobsDep, tenant: TenantDep) -> JobView:
    return JobView.from_record(jobs.get(tenant, job_id))


@router.post("/v1/jobs/{job_id}/cancel", status_code=202, response_model=JobView)
def cancel_job(job_id: JobId, jobs: JobsDep, tenant: TenantDep) -> JobView:
    """Stop a queued or running job; a running job stops between items and keeps its shards."""
    return JobView.from_record(jobs.cancel(tenant, job_id))


@router.get("/v1/jobs/{job_id}/events")
async def job_events(
    job_id: JobId, request: Request, jobs: JobsDep, tenant: TenantDep
) -> StreamingResponse:
    """Server-sent events: `progress` on every change, then `end` at a terminal state."""
    first = await run_in_threadpool(jobs.get, tenant, job_id)

    async def stream() -> AsyncIterator[bytes]:
        job, last, quiet = first, None, 0.0
        while True:
            view = JobView.from_record(job)
            mark = (
                view.state,
                view.progress.done,
                view.progress.shards_done,
                view.cancel_requested,
                json.dumps(view.progress.detail, sort_keys=True),
            )
            if mark != last:
                last, quiet = mark, 0.0
                yield _sse("progress", view.model_dump_json())
            if job.terminal:
                yield _sse("end", json.dumps({"id": job.id, "state": job.state}))
                return
            if quiet >= KEEPALIVE_S:
                quiet = 0.0
                yield b": keep-alive\n\n"
            await asyncio.sleep(EVENT_POLL_S)
            quiet += EVENT_POLL_S
            if await request.is_disconnected():
                return
            job = await run_in_threadpool(jobs.get, tenant, job_id)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


@router.get("/v1/jobs/{job_id}/artifacts", response_model=ArtifactList)
def list_artifacts(job_id: JobId, jobs: JobsDep, tenant: TenantDep) -> ArtifactList:
    """The job's output files so far (finished shards included while it runs)."""
    job, store = jobs.artifacts(tenant, job_id)
    return ArtifactList(
        job_id=job.id,
        state=job.state,
        artifacts=[
            Artifact(path=a["path"], size=a["size"], url=f"/v1/jobs/{job.id}/artifacts/{a['path']}")
            for a in store.list()
        ],
    )


@router.get("/v1/jobs/{job_id}/artifacts/{path:path}")
def download_artifact(
    job_id: JobId, path: ArtifactPath, jobs: JobsDep, tenant: TenantDep
) -> StreamingResponse:
    """Download one artifact file."""
    _, store = jobs.artifacts(tenant, job_id)
    handle = store.open(path)  # NotFound / InvalidInput before any byte is sent
    media = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if path.endswith(".jsonl"):
        media = "application/x-ndjson"

    def body() -> Iterator[bytes]:
        with handle:
            while block := handle.read(1 << 16):
                yield block

    name = path.rsplit("/", 1)[-1]
    return StreamingResponse(
        body(), media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
