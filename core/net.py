"""Small network helpers shared by the process launcher, tests and benchmarks."""

from __future__ import annotations

import socket
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def uvicorn_config(app: Any, host: str, port: int, drain_s: float, **options: Any) -> Any:
    """The uvicorn settings gateway and workers share: uvloop + httptools, no access log (each
    writes its own), a backlog for bursts, and keep-alive longer than any client's idle timeout
    (gateway 4 s, OIPClient 4 s, others 30 s), so a pooled connection is never closed by the
    server just as a client reuses it."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=int(max(1, drain_s)),
        backlog=2048,
        proxy_headers=False,  # no proxy headers are read; the middleware costs per request
        timeout_keep_alive=75,
        **options,
    )
