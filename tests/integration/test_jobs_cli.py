"""`medserve jobs submit|watch|status|cancel|artifacts` against a real gateway process, real
Redis and a real job runner: whole ids at 80 columns, id prefixes, `--json` on every listing,
hints in command-line terms, local paths resolved where they were typed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.net import free_port
from tests.harness import CLI, ROOT, JobsEnv, wait_until


def start_gateway(env: dict[str, str], log_path: Path) -> Iterator[str]:
    port = free_port()
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [*CLI, "gateway", "--port", str(port)],
        env=env,
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


@pytest.fixture
def gateway(jobs_env: JobsEnv, tmp_path: Path) -> Iterator[str]:
    yield from start_gateway(jobs_env.env(), tmp_path / "gateway.log")


def cli(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "jobs", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
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
    assert bad.returncode == 1 and "422" in bad.stderr and "items" in bad.stderr
    missing = cli("status", "0" * 32, env=env)
    assert missing.returncode == 1 and "404" in missing.stderr
    assert "`medserve jobs status`" in missing.stderr and "GET /v1" not in missing.stderr


def test_whole_ids_at_80_columns_prefixes_and_json(jobs_env: JobsEnv, gateway: str) -> None:
    jobs_env.start_runner()
    env = {**jobs_env.env(), "MEDSERVE_URL": gateway, "COLUMNS": "80"}
    ids = [
        json.loads(cli("submit", "--type", "sleep", "--params", '{"items": 2}', "--json",
                       env=env).stdout)["id"]
        for _ in range(2)
    ]  # fmt: skip
    listing = cli("status", env=env)
    assert all(line_len <= 80 for line_len in map(len, listing.stdout.splitlines()))
    assert all(job_id in listing.stdout for job_id in ids), listing.stdout
    listed = json.loads(cli("status", "--json", env=env).stdout)
    assert {j["id"] for j in listed["jobs"]} >= set(ids)

    watched = cli("watch", ids[0][:8], env=env)
    assert watched.returncode == 0 and f"{ids[0]}: succeeded" in watched.stdout
    shown = json.loads(cli("status", ids[0][:6], "--json", env=env).stdout)
    assert shown["id"] == ids[0] and shown["summary"]
    one = cli("status", ids[0][:6], env=env)
    assert ids[0] in one.stdout and "summary" in one.stdout
    files = json.loads(cli("artifacts", ids[0][:8], "--json", env=env).stdout)
    assert files["job_id"] == ids[0] and "items.jsonl" in [a["path"] for a in files["artifacts"]]
    unknown = cli("status", "zzzz", env=env)
    assert unknown.returncode == 1 and "no job id starts with 'zzzz'" in unknown.stderr


def test_hints_speak_options_not_http(jobs_env: JobsEnv, tmp_path: Path) -> None:
    env = jobs_env.env(MEDSERVE_API_KEYS="k1:t1")
    for url in start_gateway(env, tmp_path / "keyed.log"):
        env = {**env, "MEDSERVE_URL": url}
        refused = cli("status", env=env)
        assert refused.returncode == 1
        assert "--api-key" in refused.stderr and "MEDSERVE_API_KEY" in refused.stderr
        assert cli("status", "--api-key", "k1", env=env).returncode == 0
        wrong = cli("status", env={**env, "MEDSERVE_API_KEY": "nope"})
        assert wrong.returncode == 1 and "refused this API key" in wrong.stderr
    down = cli("status", "--url", f"http://127.0.0.1:{free_port()}", env=env)
    assert down.returncode == 1 and "medserve serve" in down.stderr


def test_relative_paths_are_resolved_where_they_are_typed(
    jobs_env: JobsEnv, gateway: str, tmp_path: Path
) -> None:
    env = {**jobs_env.env(), "MEDSERVE_URL": gateway}
    params = '{"source": "scans", "format": "npy"}'
    missing = cli("submit", "--type", "latent-dataset", "--params", params, env=env, cwd=tmp_path)
    assert missing.returncode == 2 and str(tmp_path / "scans") in missing.stderr
    (tmp_path / "scans").mkdir()
    made = cli("submit", "--type", "latent-dataset", "--params", params, "--json", env=env,
               cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["params"]["source"] == str(tmp_path / "scans")
