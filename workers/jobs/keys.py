"""Every Redis key the job system uses, in one place (one prefix, one function per key).

Job records, shard bookkeeping, leases, idempotency keys and tenant indexes all live under
`Keys.prefix`, so a deployment (or a test) can share a Redis with other users by prefix.
The Celery broker's own keys are named by the queue module, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.constants import JOBS_PREFIX

DEFAULT_PREFIX = JOBS_PREFIX


@dataclass(frozen=True)
class Keys:
    """Key builder; every method returns one Redis key."""

    prefix: str = DEFAULT_PREFIX

    def job(self, job_id: str) -> str:
        """Hash: the authoritative job record."""
        return f"{self.prefix}job:{job_id}"

    def shards(self, job_id: str) -> str:
        """Hash: shard index -> JSON of the committed shard (fence, items, time)."""
        return f"{self.prefix}shards:{job_id}"

    def shard_starts(self, job_id: str) -> str:
        """Hash: shard index -> how many times a runner started it (audit, tests)."""
        return f"{self.prefix}shard-starts:{job_id}"

    def lease(self, job_id: str) -> str:
        """String with a TTL: `<runner>:<fence>` of the runner holding the job."""
        return f"{self.prefix}lease:{job_id}"

    def requeue_guard(self, job_id: str, fence: int) -> str:
        """String with a TTL: one requeue per lost lease, however many reapers see it."""
        return f"{self.prefix}requeue:{job_id}:{fence}"

    def idempotency(self, tenant: str, key: str) -> str:
        """String: the job id an idempotency key already created, per tenant."""
        return f"{self.prefix}idem:{tenant}:{key}"

    def tenant_jobs(self, tenant: str) -> str:
        """Sorted set: a tenant's job ids scored by creation time (ms)."""
        return f"{self.prefix}tenant:{tenant}"

    def running(self) -> str:
        """Set: ids of jobs in state running (what the reaper checks for lost leases)."""
        return f"{self.prefix}running"

    def runner_heartbeat(self, runner_id: str) -> str:
        """String with a TTL: a live job runner (for `check` probes and listings)."""
        return f"{self.prefix}runner:{runner_id}"
