"""The same tritonclient calls against a real Triton server (PyTriton) and against our worker
give the same answers: the worker is a drop-in OIP v2 server."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton_http

from core.net import free_port
from tests.harness import ROOT, WorkerProcess

TRITON_PYTHON = ROOT / ".venv-triton" / "bin" / "python"

pytestmark = [
    pytest.mark.triton,
    pytest.mark.slow,
    pytest.mark.skipif(
        not TRITON_PYTHON.exists(), reason="PyTriton venv .venv-triton missing: `make triton-env`"
    ),
]


@pytest.fixture(scope="module")
def pytriton() -> Iterator[str]:
    libdir = subprocess.run(
        [str(TRITON_PYTHON), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    env = {**os.environ, "LD_LIBRARY_PATH": f"{libdir}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    port = free_port()
    argv = [str(TRITON_PYTHON), str(ROOT / "bench" / "pytriton_echo.py"), "--http-port", str(port)]
    argv += ["--grpc-port", str(free_port()), "--metrics-port", str(free_port())]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the PyTriton server exited during start-up"
            try:
                if httpx.get(f"http://{url}/v2/models/echo/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise TimeoutError("PyTriton did not become ready in 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with WorkerProcess(["echo"], Path(tmp_path_factory.mktemp("models"))) as proc:
        yield proc.url.removeprefix("http://")


def _ask(url: str, x: np.ndarray, binary: bool) -> tuple[np.ndarray, dict, bool, dict]:
    client = triton_http.InferenceServerClient(url)
    try:
        inp = triton_http.InferInput("INPUT0", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        out = triton_http.InferRequestedOutput("OUTPUT0", binary_data=binary)
        result = client.infer("echo", [inp], outputs=[out], request_id="same-id")
        meta = client.get_model_metadata("echo")
        return result.as_numpy("OUTPUT0"), meta, client.is_server_ready(), result.get_response()
    finally:
        client.close()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_worker_answers_like_triton(pytriton: str, worker: str, binary: bool) -> None:
    rng = np.random.default_rng(0)
    for shape in [(1, 4), (3, 16), (2, 1)]:
        x = rng.standard_normal(shape).astype(np.float32)
        theirs, their_meta, their_ready, their_doc = _ask(pytriton, x, binary)
        ours, our_meta, our_ready, our_doc = _ask(worker, x, binary)
        np.testing.assert_array_equal(ours, theirs)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        assert our_ready and their_ready
        assert our_doc["id"] == their_doc["id"] == "same-id"
        assert our_doc["outputs"][0]["shape"] == their_doc["outputs"][0]["shape"]
        for key in ("name", "inputs", "outputs"):
            assert our_meta[key] == their_meta[key]
