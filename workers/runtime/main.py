"""The worker process: `medserve worker --models a,b --port P`.

Builds the settings, creates one adapter per model (weights resolve and load in the
background once the server listens) and serves OIP v2 with uvicorn (uvloop, httptools).
SIGTERM stops new work (503), lets in-flight and queued requests finish within
`MEDSERVE_DRAIN_TIMEOUT_S`, then exits. Importing this module does not import torch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any

import typer

log = logging.getLogger("medserve.worker")


def build_adapters(
    models: list[str], options: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """One adapter per model name, from the manifests (unknown names fail with the list);
    `options` (MEDSERVE_ADAPTER_OPTIONS) overrides keys of a manifest's `adapter` block."""
    from core.errors import ModelNotFound
    from workers.runtime.families import load_manifests
    from workers.runtime.registry import adapter_for

    manifests = load_manifests()
    options = options or {}
    unknown = [m for m in [*models, *options] if m not in manifests]
    if unknown:
        raise ModelNotFound(
            f"unknown model(s) {', '.join(unknown)}; known models: {', '.join(sorted(manifests))}"
        )
    for name, extra in options.items():
        manifest = manifests[name]
        manifests[name] = manifest.model_copy(update={"adapter": {**manifest.adapter, **extra}})
    return {name: adapter_for(manifests[name]) for name in models}


def _unix_socket(path: str, backlog: int) -> Any:
    """A listening unix socket at `path` (a stale one from a killed worker is replaced)."""
    import socket

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o660)
    sock.listen(backlog)
    return sock


def run_worker(
    settings: Any,
    models: list[str],
    host: str,
    port: int,
    grpc_port: int | None = None,
    uds: str | None = None,
) -> None:
    """Serve `models` on host:port (also on the unix socket `uds`, and OIP gRPC on
    grpc_port) until SIGTERM/SIGINT."""
    import uvicorn

    from core.logging import configure_logging
    from core.net import uvicorn_config
    from workers.runtime.server import create_worker_app

    configure_logging(settings)
    # Predict and preprocess threads hand the GIL back to the event loop (and back) often;
    # the default 5 ms switch interval would add up to 5 ms to each hop under load.
    sys.setswitchinterval(0.0005)
    grpc_address = f"{host}:{grpc_port}" if grpc_port else None
    app = create_worker_app(
        settings, build_adapters(models, settings.adapter_options), grpc_address=grpc_address
    )
    state = app.state.worker

    class DrainingServer(uvicorn.Server):
        """Marks the worker draining (new requests get 503) before uvicorn stops."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            if not state.draining:
                log.info("signal received; draining", extra={"signal": int(sig)})
            state.draining = True
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets: Any = None) -> None:
            await super().shutdown(sockets)
            if uds is not None:  # uvicorn re-raises the signal after this: no `finally` runs
                with contextlib.suppress(OSError):
                    os.unlink(uds)

    config = uvicorn_config(app, host, port, settings.drain_timeout_s)
    log.info("worker starting", extra={"models": models, "host": host, "port": port, "uds": uds})
    if uds is None:
        DrainingServer(config).run()
        return
    # One server on both sockets: the TCP port for everyone, the unix socket for a co-located
    # gateway (no TCP/IP stack on that hop).
    DrainingServer(config).run(sockets=[config.bind_socket(), _unix_socket(uds, config.backlog)])


def register_worker(app: typer.Typer) -> None:
    """Add `medserve worker` to the top-level command line."""

    @app.command("worker")
    def worker(
        models: str = typer.Option(
            None, "--models", help="Comma-separated model names (default: MEDSERVE_MODELS)."
        ),
        port: int = typer.Option(None, "--port", help="Default: MEDSERVE_WORKER_PORT."),
        host: str = typer.Option("127.0.0.1", "--host"),
        device: str = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N"),
        grpc_port: int = typer.Option(
            None,
            "--grpc-port",
            help="Also serve OIP over gRPC (default: MEDSERVE_WORKER_GRPC_PORT).",
        ),
        uds: str = typer.Option(
            None,
            "--uds",
            help="Also serve on this unix socket, for a gateway on this host "
            "(route it as unix:PATH; default: MEDSERVE_WORKER_UDS).",
        ),
    ) -> None:
        """Serve models over the Open Inference Protocol v2 with dynamic batching."""
        from core.errors import MedserveError
        from core.settings import WorkerSettings

        overrides: dict[str, Any] = {}
        if models:
            overrides["models"] = models
        if device:
            overrides["device"] = device
        settings = WorkerSettings(**overrides)
        try:
            run_worker(
                settings,
                settings.models,
                host,
                port or settings.worker_port,
                grpc_port or settings.worker_grpc_port,
                uds or settings.worker_uds,
            )
        except MedserveError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(2) from None


def main() -> None:
    cli = typer.Typer(add_completion=False)
    register_worker(cli)
    cli()


if __name__ == "__main__":
    main()
