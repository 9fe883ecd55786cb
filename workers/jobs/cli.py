"""`medserve jobs-worker`: a job runner process (Celery worker + lease reaper)."""

from __future__ import annotations

import typer


def register_jobs_worker(app: typer.Typer) -> None:
    """Add the `jobs-worker` command to the top-level app."""

    @app.command("jobs-worker")
    def jobs_worker(
        concurrency: int = typer.Option(1, help="Jobs this process runs at once (threads)."),
        loglevel: str = typer.Option("INFO", help="Log level."),
        queues: str = typer.Option(
            "default",
            "--queue",
            help="Queues to consume, comma-separated: default (campaigns, benchmarks) and/or "
            "training (train-* jobs; run these runners on GPU nodes).",
        ),
    ) -> None:
        """Run batch jobs from the Redis queue (needs MEDSERVE_REDIS_URL)."""
        from core.logging import configure_logging
        from core.settings import JobSettings
        from workers.jobs.models import ModelClients
        from workers.jobs.queue import QUEUE_NAMES, JobQueue, run_worker
        from workers.jobs.records import JobStore
        from workers.jobs.runner import JobRunner, Reaper

        names = [part.strip() for part in queues.split(",") if part.strip()]
        unknown = [n for n in names if n not in QUEUE_NAMES]
        if unknown or not names:
            typer.echo(f"--queue takes {' and/or '.join(QUEUE_NAMES)}, not {queues!r}", err=True)
            raise typer.Exit(2)
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
            run_worker(
                settings,
                runner.run,
                concurrency=concurrency,
                loglevel=loglevel.upper(),
                queues=tuple(QUEUE_NAMES[n] for n in dict.fromkeys(names)),
            )
        finally:
            reaper.stop()
