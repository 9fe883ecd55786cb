"""`medserve serve|gateway|worker|jobs-worker`: the platform's processes.

`serve` is the embedded default in one command: an embedded Redis when `MEDSERVE_REDIS_URL`
is unset, model workers (child processes, restarted if they die), a job runner, and the
gateway in this process routing to the local workers. Importing this module imports no torch.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import typer

COMMANDS: set[str] = set()  # process commands registered on the app (serve starts those present)


def register(app: typer.Typer) -> None:
    """Add the process commands to the top-level app."""
    from workers.jobs.cli import register_jobs_worker
    from workers.runtime.main import register_worker

    app.command("serve")(serve)
    app.command("gateway")(gateway)
    register_worker(app)
    register_jobs_worker(app)
    COMMANDS.update(("serve", "gateway", "worker", "jobs-worker"))


def _settings(**overrides: Any) -> Any:
    from core.settings import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _check_bind(settings: Any, host: str) -> None:
    try:
        settings.check_bind(host)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def run_gateway(settings: Any, host: str, port: int) -> None:
    """Serve the gateway app with uvicorn until SIGINT/SIGTERM."""
    import uvicorn

    from core.net import uvicorn_config
    from service.app import create_app

    config = uvicorn_config(create_app(settings), host, port, settings.drain_timeout_s)
    uvicorn.Server(config).run()


def gateway(
    host: str = typer.Option(None, help="Bind address (default: MEDSERVE_HOST)."),
    port: int = typer.Option(None, help="Port (default: MEDSERVE_PORT)."),
    insecure: bool = typer.Option(
        False, "--insecure", help="Allow a non-loopback bind with no API keys."
    ),
) -> None:
    """Run the API gateway; routes from MEDSERVE_ROUTES and MEDSERVE_WORKER_URLS."""
    from core.logging import configure_logging

    settings = _settings(insecure=True if insecure else None)
    host = host or settings.host
    _check_bind(settings, host)
    configure_logging(settings)
    run_gateway(settings, host, port or settings.port)


def plan_models(settings: Any, names: list[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """(servable, skipped name -> reason, names that need tiny random weights built)."""
    from model_store.store import ModelStore
    from workers.runtime.families import load_manifests
    from workers.runtime.registry import FAMILIES

    manifests = load_manifests()
    store = ModelStore(settings.model_root, manifests)
    has_torch = importlib.util.find_spec("torch") is not None
    servable, skipped, tiny = [], {}, []
    for name in names:
        manifest = manifests.get(name)
        if manifest is None:
            skipped[name] = "no manifest in model_store/manifests"
            continue
        if manifest.family not in FAMILIES:
            skipped[name] = f"no adapter for family '{manifest.family}' in this install"
            continue
        if manifest.family != "builtin" and not has_torch:
            skipped[name] = "this install has no model runtime: pip install 'medserve[worker]'"
            continue
        if store.info(name) is None:
            if not settings.allow_random_weights:
                skipped[name] = f"no weights: run `medserve models pull {name}`"
                continue
            tiny.append(name)
        servable.append(name)
    return servable, skipped, tiny


def _child_env(settings: Any, redis_url: str, routes: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["MEDSERVE_HOME"] = str(Path(settings.home).resolve())
    env["MEDSERVE_MODEL_DIR"] = str(Path(settings.model_root).resolve())
    env["MEDSERVE_REDIS_URL"] = redis_url
    env["MEDSERVE_ROUTES"] = json.dumps(routes)
    return env


def _stop(signum: int, frame: Any) -> None:
    """SIGTERM is a clean stop: the children are stopped in `finally`, and serve exits 0."""
    raise SystemExit(0)


def serve(
    host: str = typer.Option(None, help="Gateway bind address (default: MEDSERVE_HOST)."),
    port: int = typer.Option(None, help="Gateway port (default: MEDSERVE_PORT)."),
    insecure: bool = typer.Option(
        False, "--insecure", help="Allow a non-loopback bind with no API keys."
    ),
    models: str = typer.Option(
        None, "--models", help="Comma-separated models to serve (default: MEDSERVE_MODELS)."
    ),
) -> None:
    """Run everything on this machine: Redis (embedded if unset), workers, job runner, gateway."""
    from cli.embedded_redis import EmbeddedRedis
    from cli.supervisor import ChildSpec, Supervisor
    from core.logging import configure_logging
    from core.net import free_port

    settings = _settings(insecure=True if insecure else None, models=models)
    host = host or settings.host
    port = port or settings.port
    _check_bind(settings, host)
    configure_logging(settings)
    signal.signal(signal.SIGTERM, _stop)

    servable, skipped, tiny = plan_models(settings, settings.models)
    for name, reason in skipped.items():
        typer.echo(f"warning: skipping model {name}: {reason}", err=True)
    if not servable:
        typer.echo("error: no servable models; check MEDSERVE_MODELS / --models", err=True)
        raise typer.Exit(2)
    for name in tiny:
        typer.echo(
            f"{name}: no weights pulled; building tiny random weights offline "
            "(responses say weights=random-tiny)",
            err=True,
        )

    redis = None
    supervisor = Supervisor()
    try:
        redis_url = settings.redis_url
        if not redis_url:
            redis = EmbeddedRedis(Path(settings.home).resolve() / "redis")
            redis_url = redis.start()
            typer.echo(f"embedded Redis at {redis_url}", err=True)
        count = max(1, min(settings.num_workers, len(servable)))
        groups = [servable[i::count] for i in range(count)]
        ports = [free_port() for _ in groups]
        routes = {
            m: f"http://127.0.0.1:{p}"
            for group, p in zip(groups, ports, strict=True)
            for m in group
        }
        env = _child_env(settings, redis_url, routes)
        cli = [sys.executable, "-m", "cli"]
        for i, (group, worker_port) in enumerate(zip(groups, ports, strict=True)):
            argv = [*cli, "worker", "--models", ",".join(group), "--port", str(worker_port)]
            supervisor.add(ChildSpec(f"worker-{i}", argv, env))
        if "jobs-worker" in COMMANDS:
            supervisor.add(ChildSpec("jobs-worker", [*cli, "jobs-worker"], env))
            training = [*cli, "jobs-worker", "--queue", "training"]  # its own queue and process
            supervisor.add(ChildSpec("training-worker", training, env))
        supervisor.start()
        typer.echo(
            f"medserve: gateway on http://{host}:{port} (API docs at /docs), "
            f"models {', '.join(servable)}",
            err=True,
        )
        gateway_settings = settings.model_copy(
            update={"routes": routes, "worker_urls": [], "redis_url": redis_url}
        )
        run_gateway(gateway_settings, host, port)
    finally:
        supervisor.stop(settings.drain_timeout_s)
        if redis is not None:
            redis.stop()
