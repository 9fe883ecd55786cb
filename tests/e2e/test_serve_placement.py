"""`medserve serve` places its workers: the plan printed at start and shown in /v1/models, a
placement file that puts echo on two CPU workers (both answer), and a model that fits on no
GPU refused at start-up with what to change."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import httpx

from core.constants import STORE_MARKER
from core.net import free_port
from model_store.manifest import load_manifests
from model_store.store import ModelStore
from tests.harness import CLI, ROOT, clean_env, wait_for

BODY = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}


def test_a_placement_file_puts_echo_on_two_workers_and_models_lists_both(tmp_path: Path) -> None:
    placement = tmp_path / "placement.yaml"
    placement.write_text(
        "workers:\n  - {device: cpu, models: [echo]}\n  - {device: cpu, models: [echo]}\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env(MEDSERVE_HOME=str(tmp_path / "home"), MEDSERVE_PLACEMENT_FILE=str(placement),
                    MEDSERVE_GPUS="none", MEDSERVE_HEALTH_INTERVAL_S="0.25")  # fmt: skip
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        argv = [*CLI, "serve", "--port", str(port), "--models", "echo"]
        serve = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(url + "/readyz", 90, lambda r: r.status_code == 200, log_path.read_text)
        lines = log_path.read_text().splitlines()  # JSON log lines (not a terminal)
        output = "\n".join(json.loads(line)["msg"] for line in lines if line.startswith("{"))
        assert "placement:\n  worker-0  cpu" in output and "  worker-1  cpu" in output
        model = httpx.get(url + "/v1/models/echo").json()
        assert [r["device"] for r in model["replicas"]] == ["cpu", "cpu"]
        for _ in range(20):
            assert httpx.post(url + "/v2/models/echo/infer", json=BODY).status_code == 200
        sent = [r["requests"] for r in httpx.get(url + "/v1/models/echo").json()["replicas"]]
        assert sum(sent) == 20 and min(sent) > 0, sent
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(45)


def test_a_model_that_fits_on_no_gpu_stops_serve_before_anything_starts(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "home" / "models", load_manifests())
    folder = store.path("medvae-8-1-3d")  # as if pulled: real weights need their 12 GB
    folder.mkdir(parents=True)
    (folder / STORE_MARKER).write_text(json.dumps({"weights": "pulled", "digest": "sha256:0"}))
    env = clean_env(MEDSERVE_HOME=str(tmp_path / "home"), MEDSERVE_GPUS="0:8,1:8")
    argv = [*CLI, "serve", "--port", str(free_port()), "--models", "echo,medvae-8-1-3d"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "medvae-8-1-3d needs 12 GB of GPU memory" in done.stderr
    assert "use a larger GPU" in done.stderr and "embedded Redis" not in done.stderr
