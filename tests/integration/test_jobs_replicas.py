"""Jobs use every replica: a runner's model calls spread over two real workers hosting the same
model, one of them SIGKILLed mid-way costs no call, and a campaign keeps `concurrency` calls in
flight per replica (two CPU workers sharing the cores show the mechanism, not a speed-up)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from core.settings import JobSettings
from tests.harness import JobsEnv, WorkerProcess
from workers.jobs.models import ModelClients


def served(url: str, model: str) -> int:
    stats = httpx.get(f"{url}/v2/models/{model}/stats", timeout=5).json()["model_stats"][0]
    return int(stats["inference_stats"]["success"]["count"])


@pytest.fixture(scope="module")
def echo_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[WorkerProcess]]:
    root = tmp_path_factory.mktemp("models")
    workers = [WorkerProcess(["echo"], root), WorkerProcess(["echo"], root)]
    for worker in workers:
        worker.wait_ready()
    yield workers
    for worker in workers:
        worker.stop()


def test_calls_spread_over_both_replicas_and_survive_a_sigkill(echo_pair) -> None:
    a, b = echo_pair
    clients = ModelClients(JobSettings(worker_urls=[a.url, b.url]), retry_for_s=30)
    assert sorted(clients.urls_for("echo")) == sorted([a.url, b.url])
    assert clients.replicas("echo") == 2
    before = [served(a.url, "echo"), served(b.url, "echo")]
    failures: list[BaseException] = []
    done = {"calls": 0}
    stop = threading.Event()
    x = {"INPUT0": np.ones((1, 2), np.float32)}

    def calls() -> None:
        while not stop.is_set():
            try:
                clients.infer("echo", x, {"delay_ms": 5})
                done["calls"] += 1
            except BaseException as exc:
                failures.append(exc)

    threads = [threading.Thread(target=calls) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    counts = [served(a.url, "echo") - before[0], served(b.url, "echo") - before[1]]
    a.kill()  # under load: calls in flight on it fail over to b
    at_kill = done["calls"]
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join()
    clients.close()
    assert not failures, failures[:3]
    assert done["calls"] > at_kill + 20  # the calls went on after the kill
    assert min(counts) >= 0.3 * sum(counts), counts  # both took a fair share before the kill
    a.start()  # leave the pair as found for the next test
    a.wait_ready()


@pytest.mark.slow
def test_a_campaign_runs_concurrency_per_replica_on_both_workers(
    jobs_env: JobsEnv, model_dir: Path, tiny_model
) -> None:
    model = "roentgen-v2"
    tiny_model(model)  # built once, before two workers read it
    workers = [WorkerProcess([model], model_dir), WorkerProcess([model], model_dir)]
    try:
        for worker in workers:
            worker.wait_ready(timeout=120)
        jobs_env.settings_kwargs.update(routes={model: [w.url for w in workers]})
        jobs_env.start_runner()
        params = {"findings": ["No acute cardiopulmonary process."], "sexes": ["female", "male"],
                  "age_bins": [[18, 49], [50, 95]], "races": [], "images_per_cell": 4, "seed": 3,
                  "steps": 1, "height": 64, "width": 64, "concurrency": 2}  # fmt: skip
        job = jobs_env.submit("synthetic-dataset", params)
        done = jobs_env.wait(job.id, lambda j: j.terminal, 300, "the campaign to finish")
        assert done.state == "succeeded", done.error
        counts = [served(w.url, model) for w in workers]
        assert sum(counts) == 16 and min(counts) >= 4, counts  # both replicas generated
    finally:
        for worker in workers:
            worker.stop()
