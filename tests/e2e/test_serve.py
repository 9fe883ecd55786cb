"""`medserve serve` on a fresh home: embedded Redis, tiny models, workers, job runner, gateway.

The README's first command: ready within 60 s for the default model list, docs render, a
killed worker is restarted, and SIGTERM stops it and every child it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from core.net import free_port
from core.settings import DEFAULT_MODELS
from tests.harness import CLI, ROOT, clean_env

READY_WITHIN_S = 60.0


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _wait_status(url: str, status: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == status:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


@pytest.mark.slow
def test_serve_is_ready_within_60s_restarts_workers_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    env = clean_env(MEDSERVE_HOME=str(tmp_path / "home"))
    started = time.monotonic()
    with log_path.open("wb") as log:
        serve = subprocess.Popen(
            [*CLI, "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = None
        while time.monotonic() - started < READY_WITHIN_S:
            assert serve.poll() is None, log_path.read_text()[-4000:]
            try:
                ready = httpx.get(url + "/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        elapsed = time.monotonic() - started
        assert ready is not None and ready.status_code == 200, (
            f"not ready after {elapsed:.0f} s: {ready.text if ready else 'no answer'}\n"
            + log_path.read_text()[-4000:]
        )
        served = set(ready.json()["models"])
        assert "echo" in served and served <= set(DEFAULT_MODELS)

        docs = httpx.get(url + "/docs")
        assert docs.status_code == 200 and "swagger-ui" in docs.text
        models = httpx.get(url + "/v1/models").json()["models"]
        assert all(m["weights"]["kind"] == "random-tiny" for m in models)
        body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}
        assert httpx.post(url + "/v2/models/echo/infer", json=body).status_code == 200
        output = log_path.read_text()
        assert "embedded Redis at redis://127.0.0.1:" in output
        assert "building tiny random weights" in output

        children = _children(serve.pid)
        assert len(children) >= 3  # redis-server, a worker, the job runner

        # A worker that dies is restarted by `serve`; its models come back.
        worker = next(pid for pid in children if " worker " in _cmdline(pid))
        os.kill(worker, signal.SIGKILL)
        assert _wait_status(url + "/readyz", 503, 15), "readyz stayed 200 after the worker died"
        assert _wait_status(url + "/readyz", 200, 90), log_path.read_text()[-4000:]
        assert "worker-0 exited" in log_path.read_text()
        children = _children(serve.pid)
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            code = serve.wait(45)
        except subprocess.TimeoutExpired:
            serve.kill()
            raise
    assert code == 0, code  # a clean stop
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(_gone(pid) for pid in children):
        time.sleep(0.1)
    left = [pid for pid in children if not _gone(pid)]
    for pid in left:  # do not leak processes even when the assertion fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"children still running after SIGTERM: {left}"


@pytest.mark.slow
def test_no_child_outlives_serve_killed_with_sigkill(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(MEDSERVE_HOME=str(tmp_path / "home"))
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        argv = [*CLI, "serve", "--port", str(port), "--models", "echo"]
        serve = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert _wait_status(f"http://127.0.0.1:{port}/readyz", 200, 90), log_path.read_text()
        children = _children(serve.pid)
        kinds = " | ".join(_cmdline(pid) for pid in children)
        assert "redis-server" in kinds and " worker " in kinds and "jobs-worker" in kinds, kinds
    finally:
        serve.kill()  # SIGKILL: no clean-up code of serve runs
        serve.wait(10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(_gone(pid) for pid in children):
        time.sleep(0.1)
    left = [(pid, _cmdline(pid)) for pid in children if not _gone(pid)]
    for pid, _ in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"orphans after SIGKILL of serve: {left}"
