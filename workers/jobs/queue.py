"""The one module that talks to the task library (Celery on Redis); swap the library here.

Everything else sees `JobQueue.enqueue(job_id)` and `run_worker(...)`. Messages carry only a
job id, as JSON (no pickle); the job record in Redis is the source of truth. Delivery is
at-least-once: late acks, requeue on worker loss, prefetch 1, and a visibility timeout above
the longest job; `JobRunner` drops duplicate deliveries.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.exceptions import SecurityWarning

from core.constants import CELERY_APP, JOBS_QUEUE, TASK_NAME, TRAINING_QUEUE
from core.errors import Unavailable
from core.settings import CommonSettings
from workers.jobs.types import queue_for

QUEUE = JOBS_QUEUE
# `medserve jobs-worker --queue NAME`: campaigns and benchmarks, or training jobs.
QUEUE_NAMES = {"default": JOBS_QUEUE, "training": TRAINING_QUEUE}
log = logging.getLogger("medserve.jobs")


def celery_config(settings: CommonSettings) -> dict[str, Any]:
    """Celery settings for long, resumable GPU jobs (see docs/jobs.md for why each is set)."""
    return {
        "broker_url": settings.redis_url,
        "broker_transport_options": {"visibility_timeout": int(settings.job_visibility_timeout_s)},
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_ignore_result": True,
        "result_backend": None,
        "task_default_queue": QUEUE,
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 5,
            "interval_start": 0.2,
            "interval_step": 0.5,
        },
        "worker_hijack_root_logger": False,
        "worker_enable_remote_control": False,
        "worker_send_task_events": False,
        "enable_utc": True,
    }


def make_celery(settings: CommonSettings) -> Celery:
    if not settings.redis_url:
        raise Unavailable("jobs need Redis: set MEDSERVE_REDIS_URL (or run `medserve serve`)")
    app = Celery(CELERY_APP)
    app.conf.update(celery_config(settings))
    return app


class JobQueue:
    """Producer side: put a job id on the queue."""

    def __init__(self, settings: CommonSettings) -> None:
        self.app = make_celery(settings)

    def enqueue(self, job_id: str, job_type: str | None = None) -> None:
        """Queue `job_id` on its type's queue (`JobType.queue`; no type: the default one)."""
        queue = queue_for(job_type) if job_type else QUEUE
        try:
            self.app.send_task(TASK_NAME, args=[job_id], queue=queue)
        except Exception as exc:  # kombu raises many types; callers see one
            raise Unavailable("the job queue (Redis) cannot be reached; retry later") from exc

    def close(self) -> None:
        self.app.close()


def run_worker(
    settings: CommonSettings,
    handle: Callable[[str], str],
    *,
    concurrency: int = 1,
    loglevel: str = "INFO",
    queues: tuple[str, ...] = (QUEUE,),
) -> None:
    """Consume job ids from `queues` forever, calling `handle(job_id)` for each (blocks)."""
    app = make_celery(settings)

    @app.task(name=TASK_NAME, ignore_result=True)  # type: ignore[untyped-decorator]
    def run_job(job_id: str) -> str:
        return handle(job_id)

    # Messages are JSON only (accept_content), so Celery's warning about running as root, which
    # is about unpickling untrusted messages, does not apply; containers often run as root.
    warnings.filterwarnings("ignore", category=SecurityWarning)
    app.worker_main(
        [
            "--quiet",  # celery's global option: no banner; it still logs "celery@<host> ready."
            "worker",
            f"--concurrency={concurrency}",
            "--pool=threads",
            f"--queues={','.join(queues)}",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
