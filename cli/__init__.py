"""The `medserve` command line: one typer app assembled from one module per area."""

from __future__ import annotations

import typer

from cli import jobs, models, serve, tasks

app = typer.Typer(
    help="medserve: serve medical-imaging models behind one API.", no_args_is_help=True
)
serve.register(app)
tasks.register(app)
app.add_typer(models.app, name="models", help="List, pull, build (tiny) and verify model weights.")
app.add_typer(jobs.app, name="jobs", help="Submit, follow and cancel batch jobs.")
