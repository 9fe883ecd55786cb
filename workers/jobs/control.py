"""Client-side job operations (submit, read, list, cancel, artifacts), used by the gateway.

Thin on purpose: validation comes from the job type, state from `JobStore`, delivery from
`JobQueue`. Every read is scoped to a tenant; another tenant's job is reported as missing.
"""

from __future__ import annotations

from typing import Any

from core.errors import Conflict, InvalidInput, MedserveError
from core.settings import CommonSettings
from workers.jobs.artifacts import ArtifactStore
from workers.jobs.queue import JobQueue
from workers.jobs.records import JobRecord, JobStore
from workers.jobs.types import SubmitContext, job_type

MAX_IDEMPOTENCY_KEY = 200


class JobControl:
    """The job API's operations for one deployment (one Redis, one artifact root)."""

    def __init__(self, settings: CommonSettings, store: JobStore, queue: JobQueue) -> None:
        self.settings = settings
        self.store = store
        self.queue = queue

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> JobControl:
        if not settings.redis_url:
            from core.errors import Unavailable

            raise Unavailable("jobs need Redis: set MEDSERVE_REDIS_URL (or run `medserve serve`)")
        store = JobStore.from_url(settings.redis_url, retry_for_s=2.0)
        return cls(settings, store, JobQueue(settings))

    def submit(
        self,
        tenant: str,
        kind: str,
        params: dict[str, Any],
        idempotency_key: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Validate and queue a job; `(job, False)` when the idempotency key already made it."""
        if idempotency_key is not None and not (0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY):
            raise InvalidInput(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
        handler = job_type(kind)
        lookup = SubmitContext(tenant, lambda job_id: self.store.get(job_id, tenant))
        normalized = handler.validate(handler.resolve(params, lookup))
        job, created = self.store.create(
            kind,
            tenant,
            normalized,
            artifact_root=self.settings.artifact_root,
            idempotency_key=idempotency_key,
        )
        if created:
            try:
                self.queue.enqueue(job.id, kind)
            except MedserveError:
                self.store.cancel(job.id)
                raise
        return job, created

    def get(self, tenant: str, job_id: str) -> JobRecord:
        return self.store.get(job_id, tenant)

    def list(self, tenant: str, **filters: Any) -> tuple[list[JobRecord], int | None]:
        return self.store.list(tenant, **filters)

    def cancel(self, tenant: str, job_id: str) -> JobRecord:
        outcome = self.store.cancel(job_id, tenant)
        if outcome in ("succeeded", "failed"):
            raise Conflict(
                f"job {job_id} already {outcome}; only queued or running jobs can be cancelled"
            )
        return self.store.get(job_id, tenant)

    def artifacts(self, tenant: str, job_id: str) -> tuple[JobRecord, ArtifactStore]:
        job = self.store.get(job_id, tenant)
        return job, ArtifactStore(job.artifact_uri)
