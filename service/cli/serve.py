"""`medserve serve|gateway|worker|jobs-worker` (filled in by the runtime work)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the process commands to the top-level app."""
    from workers.jobs.cli import register_jobs_worker
    from workers.main import register_worker

    register_jobs_worker(app)
    register_worker(app)
