"""`medserve jobs submit|status|watch|cancel|artifacts|check`: batch jobs through the gateway.

Every command takes a full job id or a unique prefix of one (as the progress bar shows it),
prints whole ids, and `--json` for scripts. Local paths in a job's parameters are made
absolute here, where the caller typed them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from cli.common import JsonOpt, KeyOpt, UrlOpt, console, fail, gateway, is_local, print_json, table
from medserve_client import Client, Job
from medserve_client.jobs import PATH_FIELDS, absolute_paths

app = typer.Typer(no_args_is_help=True)


def _body(spec: str | None, job_type: str | None, params: str | None) -> dict[str, Any]:
    """A job body from an example file (`{"body": {...}}` or the body itself) or options."""
    body: dict[str, Any] = {}
    if spec:
        path = Path(spec)
        if not path.is_file():
            raise fail(f"no job file at {path.resolve()} (from {spec!r})", 2)
        doc = json.loads(path.read_text())
        body = doc.get("body", doc)
    if job_type:
        body["type"] = job_type
    if params:
        try:
            extra = json.loads(params)
        except ValueError:
            raise fail(f"--params is not JSON: {params!r}", 2) from None
        body["params"] = {**body.get("params", {}), **extra}
    if "type" not in body:
        raise fail("give a job file (examples/jobs/*.json) or --type", 2)
    return body


def _check_local_paths(job_type: str, params: dict[str, Any]) -> None:
    """On a gateway on this machine, a path that does not exist is refused here, by name."""
    for dotted in PATH_FIELDS.get(job_type, ()):
        node: Any = params
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, str) and "://" not in node and not Path(node).exists():
            raise fail(f"{dotted}: no file or folder at {node}; give a path that exists", 2)


@app.command()
def submit(
    spec: str = typer.Argument(None, help="JSON file: an examples/jobs file or a job body."),
    job_type: str = typer.Option(None, "--type", help="Job type (overrides the file)."),
    params: str = typer.Option(None, "--params", help="JSON parameters (merged over the file's)."),
    idempotency_key: str = typer.Option(None, "--idempotency-key", help="Same key, same job."),
    watch_: bool = typer.Option(False, "--watch", help="Follow progress until the job ends."),
    as_json: bool = JsonOpt,
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Submit a job; prints its id (and follows it with --watch)."""
    body = _body(spec, job_type, params)
    job_params = absolute_paths(body["type"], body.get("params") or {})
    if is_local(url):
        _check_local_paths(body["type"], job_params)
    with gateway(url, api_key) as client:
        key = idempotency_key or body.get("idempotency_key")
        job = client.submit_job(body["type"], job_params, idempotency_key=key)
    if as_json:
        print_json(job.raw)
    else:
        console.print(f"{job.id}  {job.type}  {job.state}", soft_wrap=True)
    if watch_:
        watch(job.id, url=url, api_key=api_key)


def _job_rows(job: Job) -> list[tuple[str, str]]:
    p = job.progress
    rows = [
        ("id", job.id), ("type", job.type), ("state", job.state),
        ("progress", f"{p.done}/{p.total} ({p.fraction:.0%}), shards {p.shards_done}/"
                     f"{p.shards_total}"),
        ("rate", f"{p.rate_per_s:.2f}/s, ETA {_eta(p.eta_s)}"),
        ("detail", detail_text(p.detail) or "-"), ("attempt", str(job.attempt)),
        ("error", job.error or "-"),
    ]  # fmt: skip
    rows += [(f"summary.{k}", json.dumps(v)) for k, v in job.summary.items()] or [("summary", "-")]
    return rows


@app.command()
def status(
    job_id: str = typer.Argument(None, help="A job id or a unique prefix; none: list jobs."),
    state: str = typer.Option(None, help="List only jobs in this state."),
    job_type: str = typer.Option(None, "--type", help="List only jobs of this type."),
    limit: int = typer.Option(20, help="How many jobs to list."),
    as_json: bool = JsonOpt,
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Show one job, or list jobs (newest first)."""
    with gateway(url, api_key) as client:
        if job_id:
            job = client.find_job(job_id)
            if as_json:
                print_json(job.raw)
                return
            grid = table("field", "value", ids=())
            for key, value in _job_rows(job):
                grid.add_row(key, value)
            console.print(grid)
            return
        page = client.list_jobs(state=state, type=job_type, limit=limit)
    if as_json:
        print_json({"jobs": [j.raw for j in page.jobs], "next_offset": page.next_offset})
        return
    grid = table("id", "type", "state", "progress", "attempt")
    for job in page.jobs:
        grid.add_row(job.id, job.type, job.state, f"{job.progress.done}/{job.progress.total}",
                     str(job.attempt))  # fmt: skip
    console.print(grid)


def _eta(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f}s"


def detail_text(detail: dict[str, Any]) -> str:
    """A job's own progress on one line: `real epoch 2/4 step 5/12 loss 0.412 val_auroc 0.834`
    for training jobs; other keys as `key=value`."""
    parts, rest = [], dict(detail)
    if "stage" in rest:
        parts.append(str(rest.pop("stage")))
    for key in ("epoch", "step"):
        if key in rest:
            total = rest.pop(f"{key}s", None)
            parts.append(f"{key} {rest.pop(key)}" + (f"/{total}" if total else ""))
    for key, value in rest.items():
        if value is None:
            continue
        shown = f"{value:.4g}" if isinstance(value, float) else value
        parts.append(f"{key} {shown}" if key in ("loss", "val_auroc") else f"{key}={shown}")
    return " ".join(parts)


def follow(client: Client, job_id: str) -> Job:
    """A live progress bar from the job's event stream; the job as it ended."""
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
        TextColumn("{task.fields[detail]}"),
    )  # fmt: skip
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(job_id[:12], total=None, rate="", detail="")
        for event in client.job_events(job_id):
            if event.job is None:
                continue
            p = event.job.progress
            bar.update(task, total=p.total or None, completed=p.done,
                       description=f"{job_id[:12]} {event.job.state}",
                       rate=f"{p.rate_per_s:.2f}/s", detail=detail_text(p.detail))  # fmt: skip
    return client.get_job(job_id)


@app.command()
def watch(
    job_id: str = typer.Argument(..., help="The job to follow (id or unique prefix)."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """A live progress bar from the job's event stream; exits 0 if the job succeeds."""
    with gateway(url, api_key) as client:
        final = follow(client, client.find_job(job_id).id)
    colour = "green" if final.succeeded else "red"
    last = detail_text(final.progress.detail)
    console.print(f"[{colour}]{final.id}: {final.state}[/{colour}] {final.error or last}",
                  soft_wrap=True)  # fmt: skip
    if not final.succeeded:
        raise typer.Exit(1)


@app.command()
def cancel(
    job_id: str = typer.Argument(..., help="The job to cancel (id or unique prefix)."),
    as_json: bool = JsonOpt,
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Cancel a queued or running job (finished shards are kept)."""
    with gateway(url, api_key) as client:
        job = client.cancel_job(client.find_job(job_id).id)
    if as_json:
        print_json(job.raw)
        return
    stopping = " (stopping)" if job.state == "running" else ""
    console.print(f"{job.id}: {job.state}{stopping}", soft_wrap=True)


@app.command()
def artifacts(
    job_id: str = typer.Argument(..., help="The job (id or unique prefix)."),
    download: Path = typer.Option(None, "--download", help="Copy every file into this folder."),
    as_json: bool = JsonOpt,
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """List a job's output files, or download them all (with a progress bar)."""
    with gateway(url, api_key) as client:
        job = client.find_job(job_id)
        listing = client.list_artifacts(job.id)
        if download is None:
            if as_json:
                print_json({"job_id": job.id, "state": listing.state,
                            "artifacts": [vars(a) for a in listing.artifacts]})  # fmt: skip
                return
            grid = table("size", "path", ids=())
            for item in listing.artifacts:
                grid.add_row(str(item.size), item.path)
            console.print(grid)
            return
        total = sum(a.size for a in listing.artifacts)
        columns = (TextColumn("download"), BarColumn(), DownloadColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("download", total=total or None)
            client.download_artifacts(job.id, download, lambda _, n: bar.advance(task, n))
    console.print(f"{len(listing.artifacts)} file(s) in {download.resolve()}", soft_wrap=True)


@app.command("check")
def check(
    runner: str = typer.Option(
        None, "--runner", help="Runner id prefix (default: this host's runners)."
    ),
) -> None:
    """Exit 0 when a job runner on this host has a fresh heartbeat (a Kubernetes exec probe).

    Reads MEDSERVE_REDIS_URL; a runner writes its heartbeat every lease/2 seconds."""
    import socket

    from core.settings import JobSettings
    from workers.jobs.records import JobStore

    settings = JobSettings()
    if not settings.redis_url:
        raise fail("set MEDSERVE_REDIS_URL to the Redis the runners use", 2)
    prefix = runner or f"{socket.gethostname()}-"
    try:
        alive = JobStore.from_url(settings.redis_url, retry_for_s=2.0).runners(prefix + "*")
    except Exception:  # Redis down: the probe fails, with the reason
        raise fail("Redis does not answer; the runner cannot take jobs") from None
    if not alive:
        raise fail(f"no runner with a fresh heartbeat matches {prefix}*")
    console.print(f"alive: {', '.join(alive)}")
