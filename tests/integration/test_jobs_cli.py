"""`medserve jobs submit|watch|status|cancel|artifacts` against a real gateway process, real
Redis and a real job runner."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.net import free_port
from tests.harness import CLI, ROOT, JobsEnv, wait_until


@pytest.fixture
def gateway(jobs_env: JobsEnv, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [*CLI, "gateway", "--port", str(port)],
        env=jobs_env.env(),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def live() -> bool:
        try:
            return httpx.get(f"{url}/livez", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(live, 60, "the gateway to answer", every=0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "jobs", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_submit_watch_status_artifacts(jobs_env: JobsEnv, gateway: str, tmp_path: Path) -> None:
    jobs_env.start_runner()
    env = {**jobs_env.env(), "MEDSERVE_URL": gateway, "COLUMNS": "200"}
    run = cli("submit", "examples/jobs/sleep.json", "--watch", env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    job_id = run.stdout.split()[0]
    assert f"{job_id}: succeeded" in run.stdout
    assert "20/20" in run.stdout  # the progress bar's last frame

    shown = json.loads(cli("status", job_id, "--json", env=env).stdout)
    assert shown["state"] == "succeeded" and shown["progress"]["done"] == 20
    listing = cli("status", "--state", "succeeded", env=env)
    assert job_id in listing.stdout

    fetched = cli("artifacts", job_id, "--download", str(tmp_path / "out"), env=env)
    assert fetched.returncode == 0, fetched.stdout
    lines = (tmp_path / "out" / "items.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == list(range(20))


def test_cancel_and_errors(jobs_env: JobsEnv, gateway: str) -> None:
    jobs_env.start_runner()
    env = {**jobs_env.env(), "MEDSERVE_URL": gateway}
    run = cli("submit", "--type", "sleep", "--params", '{"items": 400, "item_ms": 20}', env=env)
    job_id = run.stdout.split()[0]
    jobs_env.wait(job_id, lambda j: j.shards_done >= 1, 30, "a finished shard")
    assert cli("cancel", job_id, env=env).returncode == 0
    jobs_env.wait(job_id, lambda j: j.state == "cancelled", 5, "the job to stop")
    watched = cli("watch", job_id, env=env)
    assert watched.returncode == 1 and "cancelled" in watched.stdout

    bad = cli("submit", "--type", "sleep", "--params", '{"items": 0}', env=env)
    assert bad.returncode == 1 and "422" in bad.stdout and "items" in bad.stdout
    missing = cli("status", "0" * 32, env=env)
    assert missing.returncode == 1 and "404" in missing.stdout
