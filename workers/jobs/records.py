"""The authoritative job record in Redis: create, read, list, claim, heartbeat, commit, finish.

Every state change is one Lua script, so it is atomic and fenced: a runner claims a job and
gets `attempt` (the fencing token); shard commits, progress and the final state are accepted
only while the record's `attempt` still equals that token, so a stale runner (paused past its
lease, then resumed) cannot overwrite the work of the runner that took over.
Redis calls retry with backoff for `retry_for_s` (a Redis restart is survived, not fatal).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis

from core.errors import Conflict, NotFound, Unavailable
from workers.jobs import lua
from workers.jobs.keys import Keys

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
IDEMPOTENCY_TTL_S = 24 * 3600
_RETRYABLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
T = TypeVar("T")
log = logging.getLogger("medserve.jobs")


@dataclass
class JobRecord:
    """One job, decoded from its Redis hash."""

    id: str
    type: str
    tenant: str
    params: dict[str, Any]
    state: str
    total: int = 0
    done: int = 0
    partial: int = 0
    shards_total: int = 0
    shards_done: int = 0
    attempt: int = 0
    rate: float = 0.0
    eta_s: float | None = None
    created_at: float = 0.0
    started_at: float | None = None
    updated_at: float = 0.0
    finished_at: float | None = None
    error: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)  # job-specific progress (training)
    artifact_uri: str = ""
    idempotency_key: str | None = None
    cancel_requested: bool = False

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> JobRecord:
        h = {_s(k): _s(v) for k, v in raw.items()}

        def opt_float(name: str) -> float | None:
            value = h.get(name)
            return float(value) if value not in (None, "") else None

        return cls(
            id=h["id"],
            type=h["type"],
            tenant=h["tenant"],
            params=json.loads(h.get("params") or "{}"),
            state=h["state"],
            total=int(h.get("total") or 0),
            done=int(h.get("done") or 0),
            partial=int(h.get("partial") or 0),
            shards_total=int(h.get("shards_total") or 0),
            shards_done=int(h.get("shards_done") or 0),
            attempt=int(h.get("attempt") or 0),
            rate=float(h.get("rate") or 0.0),
            eta_s=opt_float("eta_s"),
            created_at=float(h.get("created_at") or 0.0),
            started_at=opt_float("started_at"),
            updated_at=float(h.get("updated_at") or 0.0),
            finished_at=opt_float("finished_at"),
            error=h.get("error") or None,
            summary=json.loads(h.get("summary") or "{}"),
            detail=json.loads(h.get("detail") or "{}"),
            artifact_uri=h.get("artifact_uri", ""),
            idempotency_key=h.get("idempotency_key") or None,
            cancel_requested=h.get("cancel_requested") == "1",
        )


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def fingerprint(job_type: str, params: dict[str, Any]) -> str:
    canonical = json.dumps({"type": job_type, "params": params}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class JobStore:
    """Reads and writes job records; the one place that knows their Redis layout."""

    def __init__(self, client: redis.Redis, keys: Keys | None = None, retry_for_s: float = 0.0):
        self.r = client
        self.keys = keys or Keys()
        self.retry_for_s = retry_for_s
        self._create = client.register_script(lua.CREATE)
        self._claim = client.register_script(lua.CLAIM)
        self._heartbeat = client.register_script(lua.HEARTBEAT)
        self._commit = client.register_script(lua.COMMIT)
        self._update = client.register_script(lua.UPDATE)
        self._finish = client.register_script(lua.FINISH)
        self._cancel = client.register_script(lua.CANCEL)

    @classmethod
    def from_url(cls, url: str, *, retry_for_s: float = 0.0, keys: Keys | None = None) -> JobStore:
        client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        return cls(client, keys, retry_for_s)

    # Redis access with retries ------------------------------------------------------------

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn`, retrying connection errors with backoff for up to `retry_for_s`."""
        deadline = time.monotonic() + self.retry_for_s
        delay = 0.05
        while True:
            try:
                return fn()
            except _RETRYABLE as exc:
                if delay == 0.05 and self.retry_for_s:
                    log.warning("job store: Redis unreachable (%s); retrying", type(exc).__name__)
                if time.monotonic() + delay > deadline:
                    raise Unavailable(
                        "the job store (Redis) cannot be reached; retry later"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    # Client-facing operations -------------------------------------------------------------

    def create(
        self,
        job_type: str,
        tenant: str,
        params: dict[str, Any],
        *,
        artifact_root: str,
        idempotency_key: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Create a queued job; an idempotency key already used returns that job (`False`)."""
        job_id = uuid.uuid4().hex
        now = time.time()
        print_ = fingerprint(job_type, params)
        record = {
            "id": job_id,
            "type": job_type,
            "tenant": tenant,
            "params": json.dumps(params, sort_keys=True),
            "fingerprint": print_,
            "state": "queued",
            "attempt": 0,
            "done": 0,
            "partial": 0,
            "created_at": repr(now),
            "updated_at": repr(now),
            "artifact_uri": f"{artifact_root.rstrip('/')}/{tenant}/{job_id}",
            "idempotency_key": idempotency_key or "",
            "cancel_requested": "0",
        }
        flat: list[Any] = [v for pair in record.items() for v in pair]
        idem_key = self.keys.idempotency(tenant, idempotency_key or "-")
        got = self.call(
            lambda: self._create(
                keys=[self.keys.job(job_id), self.keys.tenant_jobs(tenant), idem_key],
                args=[
                    job_id,
                    int(now * 1000),
                    IDEMPOTENCY_TTL_S,
                    "1" if idempotency_key else "0",
                    *flat,
                ],
            )
        )
        existing_id = _s(got)
        job = self.get(existing_id, tenant)
        if existing_id != job_id:
            stored = _s(
                self.call(lambda: self.r.hget(self.keys.job(existing_id), "fingerprint")) or b""
            )
            if stored != print_:
                raise Conflict(
                    "this Idempotency-Key was already used for a different job; "
                    "send a new key or the same type and parameters"
                )
        return job, existing_id == job_id

    def get(self, job_id: str, tenant: str | None = None) -> JobRecord:
        """The record; `NotFound` if missing or owned by another tenant (no existence leak)."""
        raw = self.call(lambda: self.r.hgetall(self.keys.job(job_id))) if _valid_id(job_id) else {}
        if not raw:
            raise NotFound(f"no job {job_id!r}; list your jobs with GET /v1/jobs")
        record = JobRecord.from_hash(raw)
        if tenant is not None and record.tenant != tenant:
            raise NotFound(f"no job {job_id!r}; list your jobs with GET /v1/jobs")
        return record

    def list(
        self,
        tenant: str,
        *,
        state: str | None = None,
        job_type: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[JobRecord], int | None]:
        """A tenant's jobs, newest first, filtered; returns the page and the next offset."""
        ids = [
            _s(i) for i in self.call(lambda: self.r.zrevrange(self.keys.tenant_jobs(tenant), 0, -1))
        ]
        matched: list[JobRecord] = []
        pipe_ids = ids
        for start in range(0, len(pipe_ids), 200):
            chunk = pipe_ids[start : start + 200]

            def fetch(chunk: list[str] = chunk) -> list[Any]:
                pipe = self.r.pipeline(transaction=False)
                for job_id in chunk:
                    pipe.hgetall(self.keys.job(job_id))
                return pipe.execute()

            for raw in self.call(fetch):
                if not raw:
                    continue
                record = JobRecord.from_hash(raw)
                if state and record.state != state:
                    continue
                if job_type and record.type != job_type:
                    continue
                matched.append(record)
        page = matched[offset : offset + limit]
        next_offset = offset + limit if offset + limit < len(matched) else None
        return page, next_offset

    def cancel(self, job_id: str, tenant: str | None = None) -> str:
        """Request cancellation; returns `cancelled`, `cancelling` or the terminal state."""
        self.get(job_id, tenant)
        result = self.call(
            lambda: self._cancel(
                keys=[self.keys.job(job_id), self.keys.lease(job_id), self.keys.running()],
                args=[repr(time.time()), job_id],
            )
        )
        return _s(result)

    def shards(self, job_id: str) -> dict[int, dict[str, Any]]:
        raw = self.call(lambda: self.r.hgetall(self.keys.shards(job_id)))
        return {int(_s(k)): json.loads(_s(v)) for k, v in raw.items()}

    def shard_starts(self, job_id: str) -> dict[int, int]:
        raw = self.call(lambda: self.r.hgetall(self.keys.shard_starts(job_id)))
        return {int(_s(k)): int(_s(v)) for k, v in raw.items()}

    # Runner-side operations (fenced by `attempt`) -----------------------------------------

    def cancel_requested(self, job_id: str) -> bool:
        """Whether someone asked to cancel the job (one HGET; runners poll it between items)."""
        key = self.keys.job(job_id)
        return bool(self.call(lambda: self.r.hget(key, "cancel_requested")) == b"1")

    def runner_alive(self, runner: str, ttl_s: float) -> None:
        """Record that `runner` is alive for `ttl_s` (what `medserve jobs check` reads)."""
        key = self.keys.runner_heartbeat(runner)
        self.call(lambda: self.r.set(key, str(time.time()), px=int(ttl_s * 1000)))

    def runners(self, pattern: str = "*") -> list[str]:
        """The ids of runners whose heartbeat is fresh, matching a glob `pattern`."""
        prefix = self.keys.runner_heartbeat("")
        found = self.call(lambda: list(self.r.scan_iter(prefix + pattern, count=500)))
        return sorted(k.decode()[len(prefix):] if isinstance(k, bytes) else k[len(prefix):]
                      for k in found)  # fmt: skip

    def claim(self, job_id: str, runner: str, lease_s: float) -> tuple[int, str]:
        """Take the job's lease: `(attempt, "running")`, or `(0, why)` when it must not run."""
        attempt, why = self.call(
            lambda: self._claim(
                keys=[self.keys.job(job_id), self.keys.lease(job_id), self.keys.running()],
                args=[runner, int(lease_s * 1000), repr(time.time()), job_id],
            )
        )
        return int(attempt), _s(why)

    def heartbeat(self, job_id: str, runner: str, attempt: int, lease_s: float) -> int:
        """Extend the lease: 0 lost (stop), 1 held, 2 held and cancellation requested."""
        return int(
            self.call(
                lambda: self._heartbeat(
                    keys=[self.keys.job(job_id), self.keys.lease(job_id)],
                    args=[f"{runner}:{attempt}", int(lease_s * 1000), attempt],
                )
            )
        )

    def set_plan(self, job_id: str, attempt: int, total: int, shards_total: int) -> bool:
        return self.update(job_id, attempt, total=total, shards_total=shards_total)

    def mark_shard_started(self, job_id: str, shard: int) -> None:
        self.call(lambda: self.r.hincrby(self.keys.shard_starts(job_id), str(shard), 1))

    def commit_shard(
        self, job_id: str, attempt: int, shard: int, items: int, info: dict[str, Any]
    ) -> int:
        """Record a finished shard: 1 recorded, 0 already recorded, -1 fenced off (stale)."""
        doc = json.dumps({"attempt": attempt, "items": items, "at": time.time(), **info})
        return int(
            self.call(
                lambda: self._commit(
                    keys=[self.keys.job(job_id), self.keys.shards(job_id)],
                    args=[attempt, shard, doc, items, repr(time.time())],
                )
            )
        )

    def update(self, job_id: str, attempt: int, **fields: Any) -> bool:
        """Set fields while still holding the job (progress, rate, ETA, summary)."""
        flat = [v for k, val in fields.items() for v in (k, _enc(val))]
        flat += ["updated_at", repr(time.time())]
        result = self.call(
            lambda: self._update(keys=[self.keys.job(job_id)], args=[attempt, *flat])
        )
        return bool(result)

    def finish(self, job_id: str, attempt: int, state: str, **fields: Any) -> bool:
        """Move to a terminal state and release the lease; False if another runner holds it."""
        now = repr(time.time())
        flat = [v for k, val in fields.items() for v in (k, _enc(val))]
        flat += ["state", state, "finished_at", now, "updated_at", now, "partial", 0]
        result = self.call(
            lambda: self._finish(
                keys=[self.keys.job(job_id), self.keys.lease(job_id), self.keys.running()],
                args=[attempt, job_id, *flat],
            )
        )
        return bool(result)

    def running_without_lease(self) -> list[tuple[str, int]]:
        """Jobs in state running whose lease expired: their runner is gone."""
        ids = [_s(i) for i in self.call(lambda: self.r.smembers(self.keys.running()))]
        lost: list[tuple[str, int]] = []
        for job_id in ids:

            def probe(job_id: str = job_id) -> tuple[Any, Any, Any]:
                pipe = self.r.pipeline(transaction=False)
                pipe.exists(self.keys.lease(job_id))
                pipe.hget(self.keys.job(job_id), "state")
                pipe.hget(self.keys.job(job_id), "attempt")
                leased, state, attempt = pipe.execute()
                return leased, state, attempt

            leased, state, attempt = self.call(probe)
            if state is None or _s(state) != "running":
                self.call(lambda job_id=job_id: self.r.srem(self.keys.running(), job_id))
                continue
            if not leased:
                lost.append((job_id, int(_s(attempt or b"0"))))
        return lost

    def requeue_once(self, job_id: str, attempt: int, ttl_s: float) -> bool:
        """True for exactly one caller per (job, attempt) within `ttl_s`."""
        key = self.keys.requeue_guard(job_id, attempt)
        return bool(self.call(lambda: self.r.set(key, "1", nx=True, px=int(ttl_s * 1000))))


def _enc(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def _valid_id(job_id: str) -> bool:
    return 0 < len(job_id) <= 64 and all(c.isalnum() or c in "-_" for c in job_id)
