"""The one process harness of the test suite: real workers, gateways, job runners and Redis.

- `Proc`: a child process with its log file (start, SIGTERM stop, SIGKILL, logs).
- `WorkerProcess`: `medserve worker` on a free port; `RunnerProcess`: `medserve jobs-worker`.
- `EmbeddedStack`: worker processes behind a gateway process, ready when started.
- `RedisServer`: the product's embedded Redis with AOF on every write, restartable in place.
- `JobsEnv`: a private Redis, an artifact folder, runners and job submission.
Nothing here is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from cli.embedded_redis import EmbeddedRedis
from core.net import free_port
from core.settings import DEFAULT_MODELS, Settings
from workers.jobs.control import JobControl
from workers.jobs.queue import JobQueue
from workers.jobs.records import JobRecord, JobStore

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "cli"]
# One stack with a model behind every route of the served API (the OpenAPI, fuzz, console and
# CLI-task tests share it): the default models plus the GPU-only ones, on tiny random weights.
API_MODELS = sorted({*DEFAULT_MODELS, "merlin-report", "green-radllama2-7b"})
READY_TIMEOUT_S = 120.0


def settings_env(overrides: dict[str, Any]) -> dict[str, str]:
    """`MEDSERVE_*` variables for settings overrides (lists as CSV, dicts as JSON)."""
    env = {}
    for key, value in overrides.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | tuple):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, dict):
            text = json.dumps(value)
        else:
            text = str(value)
        env[f"MEDSERVE_{key.upper()}"] = text
    return env


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any MEDSERVE_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSERVE_")}
    env.update(extra)
    return env


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll `check` until it returns something true; its value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_for(url: str, timeout_s: float, ok: Callable[[httpx.Response], bool], why: Any) -> None:
    """Poll `url` until `ok(response)`; TimeoutError with `why()` (e.g. the logs) otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if ok(httpx.get(url, timeout=2.0)):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    details = why() if callable(why) else why
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f} s\n{details}")


class Proc:
    """One child process with its log file."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], log_dir: Path, **popen: Any
    ) -> None:
        self.name, self.argv, self.env, self.popen = name, argv, env, popen
        self.log_path = Path(log_dir) / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                **self.popen,
            )  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up, no ack, no lease release."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout_s`; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class WorkerProcess(Proc):
    """`medserve worker --models ... --port P`; `url` is its base URL. A context manager."""

    def __init__(
        self, models: list[str], model_dir: Path, env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:  # fmt: skip
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = clean_env(MEDSERVE_MODEL_DIR=str(model_dir), MEDSERVE_LOG_LEVEL="INFO")
        full_env.update(env or {})
        argv = [*CLI, "worker", "--models", ",".join(models), "--port", str(self.port)]
        super().__init__(f"worker-{self.port}", argv, full_env, Path(model_dir))
        self.start()

    def wait_ready(self, timeout: float = 60.0, path: str = "/v2/health/ready") -> None:
        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"worker exited early:\n{self.logs()}")
            try:
                return httpx.get(self.url + path, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(ready, timeout, "the worker", every=0.1)
        except AssertionError:
            raise TimeoutError(f"worker not ready after {timeout}s:\n{self.logs()}") from None

    def __enter__(self) -> WorkerProcess:
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RunnerProcess(Proc):
    """`medserve jobs-worker` in its own session (a test may SIGKILL it)."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        argv = [*CLI, "jobs-worker", "--loglevel", "INFO", *args]
        super().__init__(log.stem, argv, env, log.parent, start_new_session=True)
        self.start()


def spread(models: list[str], workers: int, replicas: int = 1) -> list[list[str]]:
    """Models over `workers` processes, each model on `replicas` of them (round-robin)."""
    count = max(1, min(workers, len(models) * replicas))
    replicas = min(replicas, count)
    return [[m for i, m in enumerate(models) if (j - i) % count < replicas] for j in range(count)]


class EmbeddedStack:
    """Real worker processes behind a real gateway process: models spread over `num_workers`,
    each on `replicas` of them (the gateway balances between replicas)."""

    def __init__(
        self, models: list[str], model_dir: Path, home: Path, overrides: dict[str, Any]
    ) -> None:
        overrides = dict(overrides)
        workers, replicas = int(overrides.pop("num_workers", 1)), int(overrides.pop("replicas", 1))
        self.models = list(models)
        self.home = home
        groups = spread(self.models, workers, replicas)
        ports = [free_port() for _ in groups]
        self.worker_urls = [f"http://127.0.0.1:{p}" for p in ports]
        self.routes: dict[str, list[str]] = {}
        for group, url in zip(groups, self.worker_urls, strict=True):
            for model in group:
                self.routes.setdefault(model, []).append(url)
        env = clean_env(
            MEDSERVE_MODEL_DIR=str(model_dir),
            MEDSERVE_HOME=str(home),
            MEDSERVE_LOG_JSON="true",
            **settings_env(overrides),
        )
        self.workers = [
            Proc(f"worker-{i}", [*CLI, "worker", "--models", ",".join(g), "--port", str(p)],
                 env, home)
            for i, (g, p) in enumerate(zip(groups, ports, strict=True))
        ]  # fmt: skip
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        gateway_env = {**env, "MEDSERVE_ROUTES": json.dumps(self.routes)}
        self.gateway = Proc("gateway", [*CLI, "gateway", "--port", str(self.port)],
                            gateway_env, home)  # fmt: skip
        self.client = httpx.Client(base_url=self.url, timeout=60.0)

    @property
    def worker_pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def start(self, wait_ready: bool = True) -> EmbeddedStack:
        for worker in self.workers:
            worker.start()
        self.gateway.start()
        if wait_ready:
            self.wait_ready()
        else:
            wait_for(
                self.url + "/livez", READY_TIMEOUT_S, lambda r: r.status_code == 200, self.logs
            )
        return self

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        wait_for(self.url + "/readyz", timeout_s, lambda r: r.status_code == 200, self.logs)

    def kill_worker(self, index: int) -> None:
        """SIGKILL one worker process (no restart)."""
        self.workers[index].kill()

    def restart_worker(self, index: int) -> None:
        """(Re)start worker `index` on its port and wait until the gateway is ready again."""
        self.workers[index].kill()
        self.workers[index].start()
        self.wait_ready()

    def heal(self) -> None:
        """Restart whatever died, then wait until ready."""
        for proc in [*self.workers, self.gateway]:
            if not proc.alive():
                proc.start()
        self.wait_ready()

    def logs(self) -> str:
        parts = [f"--- {p.name} ---\n{p.logs()[-4000:]}" for p in [self.gateway, *self.workers]]
        return "\n".join(parts)

    def stop(self) -> None:
        self.client.close()
        for proc in [self.gateway, *self.workers]:
            proc.stop()


class RedisServer(EmbeddedRedis):
    """The product's embedded Redis with every write fsynced; restartable on the same port."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, port=free_port(), persist=True, fsync="always")

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


def _env_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


class JobsEnv:
    """One private Redis, an artifact folder, and helpers to start runners and submit jobs."""

    def __init__(self, root: Path, server: RedisServer, **settings: Any) -> None:
        self.root = root
        self.server = server
        self.settings_kwargs = {
            "redis_url": server.url,
            "artifact_dir": str(root / "artifacts"),
            "home": root,
            "job_lease_s": 2.0,
            "job_shard_size": 5,
            **settings,
        }
        self.settings = Settings(**self.settings_kwargs)
        self.store = JobStore.from_url(server.url, retry_for_s=30.0)
        self.control = JobControl(self.settings, self.store, JobQueue(self.settings))
        self.runners: list[RunnerProcess] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = clean_env(**{f"MEDSERVE_{k.upper()}": _env_value(v)
                           for k, v in self.settings_kwargs.items()})  # fmt: skip
        env.update(extra)
        return env

    def start_runner(self, *args: str, **extra: str) -> RunnerProcess:
        log = self.root / f"runner-{len(self.runners)}.log"
        runner = RunnerProcess(self.env(**extra), log, *args)
        self.runners.append(runner)
        return runner

    def submit(self, kind: str, params: dict[str, Any], tenant: str = "t1") -> JobRecord:
        job, _ = self.control.submit(tenant, kind, params)
        return job

    def wait(
        self, job_id: str, check: Callable[[JobRecord], bool], timeout: float, what: str
    ) -> JobRecord:
        def probe() -> JobRecord | None:
            job = self.store.get(job_id)
            return job if check(job) else None

        result: JobRecord = wait_until(probe, timeout, what)
        return result

    def close(self) -> None:
        for runner in self.runners:
            runner.stop()
        self.control.queue.close()
