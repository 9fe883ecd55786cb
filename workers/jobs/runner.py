"""Run one job: claim it (fencing token), heartbeat its lease, do the unfinished shards, finish.

Library-neutral: the queue module calls `JobRunner.run(job_id)` for each delivered message
and never needs to know more. A message delivered twice, or for a job another runner holds,
is dropped here; a runner that dies leaves a lease that expires, and the `Reaper` of any live
runner puts the job back on the queue, where the next runner resumes at the first unfinished
shard.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from core.errors import MedserveError
from core.settings import JobSettings
from workers.jobs.artifacts import ArtifactStore
from workers.jobs.records import JobRecord, JobStore
from workers.jobs.shards import load_or_create_plan
from workers.jobs.types import job_type

log = logging.getLogger("medserve.jobs")
PROGRESS_EVERY_S = 0.5
CANCEL_POLL_S = 0.2  # a cancel request stops a job within about this long (plus one item)


class JobCancelled(Exception):
    """Raised between items when the job's cancel flag is set."""


class LeaseLost(Exception):
    """Raised between items when another runner took the job over (this one is stale)."""


class JobContext:
    """What a job type's handler sees: parameters, artifacts, models, progress and stop checks."""

    def __init__(
        self,
        store: JobStore,
        job: JobRecord,
        attempt: int,
        settings: JobSettings,
        models: Any = None,
    ) -> None:
        self.store = store
        self.job = job
        self.params = job.params
        self.attempt = attempt
        self.settings = settings
        self.artifacts = ArtifactStore(job.artifact_uri)
        self.models = models
        self.cancel = threading.Event()
        self.lost = threading.Event()
        self.partial = 0
        self.committed_here = 0
        self.base_done = 0
        self.total = 0
        self.started = time.monotonic()
        self._last_progress = 0.0
        self._last_detail = 0.0
        self._last_cancel_poll = 0.0

    def check(self) -> None:
        """Stop here if the job was cancelled or taken over (polls Redis at most every 0.2 s)."""
        if self.lost.is_set():
            raise LeaseLost()
        now = time.monotonic()
        if not self.cancel.is_set() and now - self._last_cancel_poll >= CANCEL_POLL_S:
            self._last_cancel_poll = now
            try:
                if self.store.cancel_requested(self.job.id):
                    self.cancel.set()
            except MedserveError:
                pass  # Redis away: the heartbeat keeps trying
        if self.cancel.is_set():
            raise JobCancelled()

    def should_stop(self) -> bool:
        """For long loops that must stop cleanly themselves (training): cancelled or lost."""
        try:
            self.check()
        except (JobCancelled, LeaseLost):
            return True
        return False

    def report(self, detail: dict[str, Any], *, force: bool = False) -> bool:
        """Job-specific progress (training: stage, epoch, step, loss, val metric) for the
        record's `progress.detail`, at most every 0.5 s unless `force`; never raises.

        Returns False once the record refuses the write (another attempt holds the job, or it
        is no longer running): `lost` is then set, so the job stops at its next check."""
        now = time.monotonic()
        if not force and now - self._last_detail < PROGRESS_EVERY_S:
            return not self.lost.is_set()
        self._last_detail = now
        try:
            held = self.store.update(self.job.id, self.attempt, detail=detail)
        except MedserveError:
            return not self.lost.is_set()  # Redis away: the heartbeat decides
        except Exception:  # progress must never break a job
            log.warning("job %s: progress report failed", self.job.id)
            return not self.lost.is_set()
        if not held:
            self.lost.set()
        return held

    def item_done(self, n: int = 1) -> None:
        """Count finished items (progress, rate, ETA) and stop if asked to."""
        self.partial += n
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            self.store.update(self.job.id, self.attempt, partial=self.partial, **self.rates())
        self.check()

    def rates(self) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = (self.committed_here + self.partial) / elapsed
        remaining = max(self.total - self.base_done - self.committed_here - self.partial, 0)
        return {"rate": round(rate, 4), "eta_s": round(remaining / rate, 2) if rate > 0 else None}


class JobRunner:
    """Runs delivered jobs in this process; one `run` call per queue message."""

    def __init__(
        self,
        settings: JobSettings,
        store: JobStore,
        models_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease_s = float(settings.job_lease_s)
        self._models_factory = models_factory
        self._models: Any = None

    def models(self) -> Any:
        if self._models is None and self._models_factory is not None:
            self._models = self._models_factory()
        return self._models

    def run(self, job_id: str) -> str:
        """Run (or resume) the job; returns what happened, for the log."""
        attempt, why = self.store.claim(job_id, self.id, self.lease_s)
        if not attempt:
            log.info("job %s not run: %s", job_id, why)
            return why
        job = self.store.get(job_id)
        ctx = JobContext(self.store, job, attempt, self.settings, self.models())
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(ctx, stop), daemon=True)
        beat.start()
        try:
            return self._execute(ctx)
        finally:
            stop.set()
            beat.join(timeout=5)

    def beat(self) -> None:
        """This runner is alive (for `medserve jobs check`, the Kubernetes exec probe)."""
        try:
            self.store.runner_alive(self.id, self.lease_s * 3)
        except MedserveError:
            pass

    def _heartbeat(self, ctx: JobContext, stop: threading.Event) -> None:
        while not stop.wait(self.lease_s / 3):
            try:
                held = self.store.heartbeat(ctx.job.id, self.id, ctx.attempt, self.lease_s)
            except MedserveError:
                continue  # Redis unreachable: keep working, keep trying
            if held == 0:
                ctx.lost.set()
                return
            if held == 2:
                ctx.cancel.set()

    def _execute(self, ctx: JobContext) -> str:
        job_id, attempt = ctx.job.id, ctx.attempt
        kind = job_type(ctx.job.type)
        try:
            plan = load_or_create_plan(
                ctx.artifacts, lambda: kind.plan(ctx), self.settings.job_shard_size
            )
            ctx.total = len(plan.items)
            done = set(self.store.shards(job_id))
            ctx.base_done = sum(len(plan.shard_items(s)) for s in done)
            self.store.set_plan(job_id, attempt, ctx.total, plan.shard_count)
            log.info(
                "job %s attempt %d: %d/%d shards left",
                job_id,
                attempt,
                len(plan.pending(done)),
                plan.shard_count,
            )
            for shard in plan.pending(done):
                ctx.check()
                self.store.mark_shard_started(job_id, shard)
                items = plan.shard_items(shard)
                info = kind.run_shard(ctx, shard, items)
                result = self.store.commit_shard(job_id, attempt, shard, len(items), info)
                if result < 0:
                    raise LeaseLost()
                ctx.partial = 0
                ctx.committed_here += len(items)
                done.add(shard)
                self.store.update(job_id, attempt, **ctx.rates())
            summary = kind.finalize(ctx, sorted(done), plan.items)
            self.store.finish(job_id, attempt, "succeeded", summary=summary, eta_s=0)
            log.info("job %s succeeded", job_id)
            return "succeeded"
        except JobCancelled:
            summary = self._finalize_partial(ctx, kind, plan.items if "plan" in locals() else [])
            self.store.finish(job_id, attempt, "cancelled", summary=summary, eta_s=None)
            log.info("job %s cancelled", job_id)
            return "cancelled"
        except LeaseLost:
            log.warning(
                "job %s attempt %d: taken over by another runner; stopping", job_id, attempt
            )
            return "lost"
        except MedserveError as exc:
            self.store.finish(job_id, attempt, "failed", error=exc.message)
            log.warning("job %s failed: %s", job_id, exc.code)
            return "failed"
        except Exception as exc:  # a bug in a handler must not kill the runner
            self.store.finish(
                job_id, attempt, "failed", error=f"internal error ({type(exc).__name__})"
            )
            log.error("job %s failed with %s", job_id, type(exc).__name__)
            return "failed"

    def _finalize_partial(
        self, ctx: JobContext, kind: Any, items: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Keep what was finished: finalise from the shards recorded so far."""
        try:
            done = sorted(self.store.shards(ctx.job.id))
            summary: dict[str, Any] = kind.finalize(ctx, done, items) if items else {}
            return summary
        except MedserveError as exc:
            return {"finalize_error": exc.message}


class Reaper:
    """Puts jobs whose runner died (lease expired while running) back on the queue."""

    def __init__(
        self,
        store: JobStore,
        enqueue: Callable[[str, str], None],
        lease_s: float,
        guard_s: float,
        alive: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.alive = alive
        self.enqueue = enqueue
        self.lease_s = lease_s
        self.guard_s = max(guard_s, lease_s * 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="jobs-reaper", daemon=True)

    def start(self) -> None:
        if self.alive is not None:
            self.alive()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def sweep(self) -> list[str]:
        requeued = []
        for job_id, attempt in self.store.running_without_lease():
            if self.store.requeue_once(job_id, attempt, ttl_s=self.guard_s):
                self.enqueue(job_id, self.store.get(job_id).type)  # back on its type's queue
                requeued.append(job_id)
                log.warning("job %s: runner lost (attempt %d); requeued", job_id, attempt)
        return requeued

    def _loop(self) -> None:
        while not self._stop.wait(max(self.lease_s / 2, 0.5)):
            if self.alive is not None:
                self.alive()
            try:
                self.sweep()
            except MedserveError:
                continue
            except Exception as exc:  # never let the sweeper die silently
                log.error("reaper sweep failed: %s", type(exc).__name__)
