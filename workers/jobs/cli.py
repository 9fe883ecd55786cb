"""`medserve jobs-worker`: a job runner process (Celery worker + lease reaper)."""

from __future__ import annotations

import typer


def register_jobs_worker(app: typer.Typer) -> None:
    """Add the `jobs-worker` command to the top-level app."""

    @app.command("jobs-worker")
    def jobs_worker(
        concurrency: int = typer.Option(1, help="Jobs this process runs at once (threads)."),
        loglevel: str = typer.Option("INFO", help="Log level."),
    ) -> None:
        """Run batch jobs from the Redis queue (needs MEDSERVE_REDIS_URL)."""
        from core.logging import configure_logging
        from core.settings import JobSettings
        from workers.jobs.models import ModelClients
        from workers.jobs.queue import JobQueue, run_worker
        from workers.jobs.records import JobStore
        from workers.jobs.runner import JobRunner, Reaper

        settings = JobSettings()
        if not settings.redis_url:
            typer.echo("set MEDSERVE_REDIS_URL to the Redis that holds the job queue", err=True)
            raise typer.Exit(2)
        configure_logging(settings.model_copy(update={"log_level": loglevel.upper()}))
        store = JobStore.from_url(
            settings.redis_url, retry_for_s=max(300.0, settings.job_lease_s * 10)
        )
        runner = JobRunner(settings, store, models_factory=lambda: ModelClients(settings))
        queue = JobQueue(settings)
        reaper = Reaper(
            store,
            queue.enqueue,
            settings.job_lease_s,
            settings.job_visibility_timeout_s,
            alive=runner.beat,
        )
        reaper.start()
        try:
            run_worker(settings, runner.run, concurrency=concurrency, loglevel=loglevel.upper())
        finally:
            reaper.stop()
