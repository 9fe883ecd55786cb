"""`medserve jobs submit|status|watch|cancel|artifacts`: batch jobs over the gateway's HTTP API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

app = typer.Typer(no_args_is_help=True)
console = Console()

UrlOpt = typer.Option("http://127.0.0.1:8000", "--url", envvar="MEDSERVE_URL", help="Gateway URL.")
KeyOpt = typer.Option(None, "--api-key", envvar="MEDSERVE_API_KEY", help="API key (if auth is on).")


def _client(url: str, api_key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=30.0)


def _check(answer: httpx.Response) -> Any:
    if answer.status_code >= 400:
        try:
            message = answer.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = answer.text[:200]
        console.print(f"[red]{answer.status_code}: {message}[/red]")
        raise typer.Exit(1)
    return answer.json()


def _body(spec: str | None, job_type: str | None, params: str | None) -> dict[str, Any]:
    """A job body from an example file (`{"body": {...}}` or the body itself) or options."""
    if spec:
        doc = json.loads(Path(spec).read_text())
        body: dict[str, Any] = doc.get("body", doc)
    else:
        body = {}
    if job_type:
        body["type"] = job_type
    if params:
        body["params"] = {**body.get("params", {}), **json.loads(params)}
    if "type" not in body:
        console.print("[red]give a job file (examples/jobs/*.json) or --type[/red]")
        raise typer.Exit(2)
    return body


@app.command()
def submit(
    spec: str = typer.Argument(None, help="JSON file: an examples/jobs file or a job body."),
    job_type: str = typer.Option(None, "--type", help="Job type (overrides the file)."),
    params: str = typer.Option(None, "--params", help="JSON parameters (merged over the file's)."),
    idempotency_key: str = typer.Option(None, "--idempotency-key", help="Same key, same job."),
    watch_: bool = typer.Option(False, "--watch", help="Follow progress until the job ends."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Submit a job; prints its id (and follows it with --watch)."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    with _client(url, api_key) as client:
        job = _check(client.post("/v1/jobs", json=_body(spec, job_type, params), headers=headers))
    console.print(f"{job['id']}  {job['type']}  {job['state']}")
    if watch_:
        watch(job["id"], url=url, api_key=api_key)


@app.command()
def status(
    job_id: str = typer.Argument(None, help="A job id; without it, list your jobs."),
    state: str = typer.Option(None, help="List only jobs in this state."),
    job_type: str = typer.Option(None, "--type", help="List only jobs of this type."),
    limit: int = typer.Option(20, help="How many jobs to list."),
    as_json: bool = typer.Option(False, "--json", help="Print the raw JSON."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Show one job, or list jobs (newest first)."""
    with _client(url, api_key) as client:
        if job_id:
            job = _check(client.get(f"/v1/jobs/{job_id}"))
            if as_json:
                console.print_json(data=job)
                return
            p = job["progress"]
            table = Table(show_header=False)
            for key, value in (
                ("id", job["id"]), ("type", job["type"]), ("state", job["state"]),
                ("progress", f"{p['done']}/{p['total']} ({p['fraction']:.0%}), "
                             f"shards {p['shards_done']}/{p['shards_total']}"),
                ("rate", f"{p['rate_per_s']:.2f}/s, ETA {_eta(p['eta_s'])}"),
                ("detail", detail_text(p.get("detail") or {}) or "-"),
                ("attempt", str(job["attempt"])), ("error", job["error"] or "-"),
                ("summary", json.dumps(job["summary"])[:300] or "-"),
            ):  # fmt: skip
                table.add_row(key, str(value))
            console.print(table)
            return
        query: dict[str, str | int] = {"limit": limit}
        if state:
            query["state"] = state
        if job_type:
            query["type"] = job_type
        listing = _check(client.get("/v1/jobs", params=query))
    if as_json:
        console.print_json(data=listing)
        return
    table = Table("id", "type", "state", "progress", "attempt")
    for job in listing["jobs"]:
        p = job["progress"]
        table.add_row(
            job["id"], job["type"], job["state"], f"{p['done']}/{p['total']}", str(job["attempt"])
        )
    console.print(table)


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


@app.command()
def watch(
    job_id: str = typer.Argument(..., help="The job to follow."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """A live progress bar from the job's event stream; exits 0 if the job succeeds."""
    final: dict[str, Any] = {}
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
        TextColumn("{task.fields[detail]}"),
    )  # fmt: skip
    with _client(url, api_key) as client, Progress(*columns, console=console) as bar:
        task = bar.add_task(job_id[:12], total=None, rate="", detail="")
        with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=None) as answer:
            if answer.status_code >= 400:
                answer.read()
                _check(answer)
            event = ""
            for line in answer.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "progress":
                    final = json.loads(line[6:])
                    p = final["progress"]
                    bar.update(
                        task,
                        total=p["total"] or None,
                        completed=p["done"],
                        description=f"{job_id[:12]} {final['state']}",
                        rate=f"{p['rate_per_s']:.2f}/s",
                        detail=detail_text(p.get("detail") or {}),
                    )
    state = final.get("state", "unknown")
    colour = "green" if state == "succeeded" else "red"
    last = detail_text((final.get("progress") or {}).get("detail") or {})
    console.print(f"[{colour}]{job_id}: {state}[/{colour}] {final.get('error') or last}")
    if state != "succeeded":
        raise typer.Exit(1)


@app.command()
def cancel(
    job_id: str = typer.Argument(..., help="The job to cancel."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """Cancel a queued or running job (finished shards are kept)."""
    with _client(url, api_key) as client:
        job = _check(client.post(f"/v1/jobs/{job_id}/cancel"))
    console.print(
        f"{job['id']}: {job['state']}" + (" (stopping)" if job["state"] == "running" else "")
    )


@app.command()
def artifacts(
    job_id: str = typer.Argument(..., help="The job whose files to list or download."),
    download: Path = typer.Option(None, "--download", help="Copy every file into this folder."),
    url: str = UrlOpt,
    api_key: str = KeyOpt,
) -> None:
    """List a job's output files, or download them all."""
    with _client(url, api_key) as client:
        listing = _check(client.get(f"/v1/jobs/{job_id}/artifacts"))
        for item in listing["artifacts"]:
            if download is None:
                console.print(f"{item['size']:>12}  {item['path']}")
                continue
            target = download / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            with client.stream("GET", item["url"]) as answer, target.open("wb") as handle:
                for block in answer.iter_bytes():
                    handle.write(block)
    if download is not None:
        console.print(f"{len(listing['artifacts'])} file(s) in {download}")


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
        console.print("[red]set MEDSERVE_REDIS_URL to the Redis the runners use[/red]")
        raise typer.Exit(2)
    prefix = runner or f"{socket.gethostname()}-"
    try:
        alive = JobStore.from_url(settings.redis_url, retry_for_s=2.0).runners(prefix + "*")
    except Exception:  # Redis down: the probe fails, with the reason
        console.print("[red]Redis does not answer; the runner cannot take jobs[/red]")
        raise typer.Exit(1) from None
    if not alive:
        console.print(f"[red]no runner with a fresh heartbeat matches {prefix}*[/red]")
        raise typer.Exit(1)
    console.print(f"alive: {', '.join(alive)}")
