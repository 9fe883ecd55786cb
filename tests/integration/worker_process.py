"""Start a real `medserve worker` process on a free port for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from core.net import free_port

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """A worker subprocess; `url` is its base URL. Use as a context manager."""

    def __init__(self, models: list[str], model_dir: Path, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = model_dir / f"worker-{self.port}.log"
        full_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MEDSERVE_")},
            "MEDSERVE_MODEL_DIR": str(model_dir),
            "MEDSERVE_LOG_LEVEL": "INFO",
            **(env or {}),
        }
        medserve = Path(sys.executable).with_name("medserve")
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(medserve), "worker", "--models", ",".join(models), "--port", str(self.port)],
            cwd=ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0, path: str = "/v2/health/ready") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.logs()}")
            try:
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> WorkerProcess:
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
