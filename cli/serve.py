"""`medserve serve|gateway|worker|jobs-worker`: the platform's processes.

`serve` is the embedded default in one command: an embedded Redis when `MEDSERVE_REDIS_URL`
is unset, model workers (child processes, restarted if they die), a job runner, and the
gateway in this process routing to the local workers. Importing this module imports no torch.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

COMMANDS: set[str] = set()  # process commands registered on the app (serve starts those present)
STILL_LOADING_EVERY_S = 30.0
log = logging.getLogger("medserve.serve")


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


def placement(settings: Any, servable: list[str], tiny: Sequence[str] = ()) -> list[Any]:
    """The worker plan: from MEDSERVE_PLACEMENT_FILE, else computed from the manifests'
    resources and this machine's GPUs (MEDSERVE_GPUS), else CPU workers (MEDSERVE_NUM_WORKERS).
    A model served with tiny random weights needs no GPU memory (and runs on a CPU)."""
    from cli.devices import machine_gpus
    from cli.placement import Need, load_plan, plan
    from model_store.store import ModelStore
    from workers.runtime.families import load_manifests

    manifests = load_manifests()
    store = ModelStore(settings.model_root, manifests)
    needs = []
    for name in servable:
        res = manifests[name].resources
        if name in tiny or (store.info(name) or {}).get("weights") == "random-tiny":
            needs.append(Need(name, 0.0, True, res.replicas))
        else:
            needs.append(Need(name, res.min_gpu_memory_gb, res.cpu_ok, res.replicas))
    gpus = machine_gpus(settings.gpus)
    if settings.placement_file:
        return load_plan(Path(settings.placement_file), needs, gpus)
    return plan(needs, gpus, settings.num_workers)


def worker_children(
    workers: list[Any], env: dict[str, str]
) -> tuple[list[tuple[str, list[str], dict[str, str]]], dict[str, list[str]], dict[str, str]]:
    """(name, argv, env) per planned worker, the routes (model -> URLs) and URL -> device."""
    from cli.devices import visible_device
    from core.net import free_port

    children, routes, devices = [], {}, {}
    mixed = any(w.device != "cpu" for w in workers)  # then a CPU worker is so on purpose
    for i, worker in enumerate(workers):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "cli", "worker", "--models", ",".join(worker.models),
                "--port", str(port)]  # fmt: skip
        child_env = dict(env)
        if worker.device.startswith("cuda:"):  # one GPU per worker: it sees only its own
            argv += ["--device", "cuda"]
            child_env["CUDA_VISIBLE_DEVICES"] = visible_device(int(worker.device[5:]))
        elif mixed:
            argv += ["--device", "cpu"]
        children.append((f"worker-{i}", argv, child_env))
        for name in worker.models:
            routes.setdefault(name, []).append(url)
        devices[url] = worker.device
    return children, routes, devices


def _child_env(settings: Any, redis_url: str, routes: dict[str, list[str]]) -> dict[str, str]:
    env = dict(os.environ)
    env["MEDSERVE_HOME"] = str(Path(settings.home).resolve())
    env["MEDSERVE_MODEL_DIR"] = str(Path(settings.model_root).resolve())
    env["MEDSERVE_REDIS_URL"] = redis_url
    env["MEDSERVE_ROUTES"] = json.dumps(routes)
    return env


def announce_when_ready(url: str, models: list[str], stop: threading.Event) -> None:
    """Log where the stack is once `/readyz` says ready (and what is still loading until then);
    the line a person waits for, printed only when it is true."""
    from medserve_client import Client, MedserveClientError

    local = url.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://[::1]:")
    started = time.monotonic()
    next_note = started + STILL_LOADING_EVERY_S
    with Client(local, api_key="", timeout=2.0, max_retries=0) as client:
        while not stop.wait(0.25):
            try:
                state = client.readiness()
            except MedserveClientError:
                continue
            if state.ready:
                log.info(
                    "ready on %s in %.1f s (models %s); API docs %s/docs, console %s/ui/",
                    url, time.monotonic() - started, ", ".join(models), url, url,
                )  # fmt: skip
                return
            if time.monotonic() >= next_note:
                waiting = "; ".join(f"{k}: {v}" for k, v in state.not_ready().items())
                log.info("still loading: %s", waiting)
                next_note += STILL_LOADING_EVERY_S


def _stop(signum: int, frame: Any) -> None:
    """SIGTERM and Ctrl-C are a clean stop: the children are stopped in `finally`, and serve
    exits 0 (uvicorn handles the signal first and raises it again once the gateway is down)."""
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
    from cli.placement import describe
    from cli.supervisor import ChildSpec, Supervisor
    from core.errors import MedserveError
    from core.logging import configure_logging

    settings = _settings(insecure=True if insecure else None, models=models)
    host = host or settings.host
    port = port or settings.port
    _check_bind(settings, host)
    configure_logging(settings)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    servable, skipped, tiny = plan_models(settings, settings.models)
    for name, reason in skipped.items():
        log.warning("skipping model %s: %s", name, reason)
    if not servable:
        typer.echo("error: no servable models; check MEDSERVE_MODELS / --models", err=True)
        raise typer.Exit(2)
    for name in tiny:
        log.warning(
            "%s: no weights pulled; building tiny random weights offline "
            "(responses say weights=random-tiny)",
            name,
        )

    try:
        workers = placement(settings, servable, tiny)
    except MedserveError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    log.info("%s", describe(workers))

    redis = None
    supervisor = Supervisor()
    ready_watch = threading.Event()
    try:
        redis_url = settings.redis_url
        if not redis_url:
            redis = EmbeddedRedis(Path(settings.home).resolve() / "redis")
            redis_url = redis.start()
            log.info("embedded Redis at %s", redis_url)
        children, routes, devices = worker_children(workers, {})
        env = _child_env(settings, redis_url, routes)
        for name, argv, extra in children:
            supervisor.add(ChildSpec(name, argv, {**env, **extra}))
        cli = [sys.executable, "-m", "cli"]
        if "jobs-worker" in COMMANDS:
            supervisor.add(ChildSpec("jobs-worker", [*cli, "jobs-worker"], env))
            training = [*cli, "jobs-worker", "--queue", "training"]  # its own queue and process
            supervisor.add(ChildSpec("training-worker", training, env))
        supervisor.start()
        url = f"http://{host}:{port}"
        log.info("starting the gateway on %s; loading models %s", url, ", ".join(servable))
        watch = threading.Thread(target=announce_when_ready, args=(url, servable, ready_watch),
                                 name="medserve-ready", daemon=True)  # fmt: skip
        watch.start()
        gateway_settings = settings.model_copy(
            update={"routes": routes, "worker_urls": [], "redis_url": redis_url,
                    "worker_devices": devices}
        )  # fmt: skip
        run_gateway(gateway_settings, host, port)
    finally:
        ready_watch.set()
        supervisor.stop(settings.drain_timeout_s)
        if redis is not None:
            redis.stop()
