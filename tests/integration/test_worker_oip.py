"""A real worker process speaks OIP v2 as tritonclient expects; errors are clean and typed."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from core.errors import BadRequest, InvalidInput, ModelNotFound
from tests.harness import WorkerProcess
from workers.runtime.client import OIPClient, SyncOIPClient


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    env = {"MEDSERVE_MAX_BODY_MB": "8"}
    with WorkerProcess(["echo"], Path(tmp_path_factory.mktemp("models")), env) as proc:
        yield proc


@pytest.fixture
def triton(worker: WorkerProcess) -> Iterator[triton_http.InferenceServerClient]:
    client = triton_http.InferenceServerClient(worker.url.removeprefix("http://"))
    yield client
    client.close()


def _echo_input(x: np.ndarray, binary: bool) -> triton_http.InferInput:
    inp = triton_http.InferInput("INPUT0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    return inp


def _assert_still_serves(worker: WorkerProcess) -> None:
    with SyncOIPClient(worker.url) as client:
        out = client.infer("echo", {"INPUT0": np.ones((1, 3), np.float32)})
    np.testing.assert_array_equal(out.outputs["OUTPUT0"], np.ones((1, 3), np.float32))


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_infers_with_binary_and_json_tensors(
    triton: triton_http.InferenceServerClient, binary: bool
) -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = triton_http.InferRequestedOutput("OUTPUT0", binary_data=binary)
    result = triton.infer("echo", [_echo_input(x, binary)], outputs=[out], request_id="req-1")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)
    response = result.get_response()
    assert response["id"] == "req-1" and response["model_name"] == "echo"
    assert response["parameters"]["weights"] == "random-tiny"
    assert response["parameters"]["weights_digest"].startswith("sha256:")


def test_tritonclient_gzip_request_and_response(triton: triton_http.InferenceServerClient) -> None:
    x = np.linspace(0, 1, 64, dtype=np.float32).reshape(2, 32)
    result = triton.infer(
        "echo",
        [_echo_input(x, True)],
        request_compression_algorithm="gzip",
        response_compression_algorithm="gzip",
    )
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)


def test_metadata_readiness_and_statistics_answer_as_the_spec_says(
    triton: triton_http.InferenceServerClient, worker: WorkerProcess
) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("echo") and triton.is_model_ready("echo", "1")
    assert not triton.is_model_ready("echo", "2")
    server = triton.get_server_metadata()
    assert server["name"] == "medserve" and "binary_tensor_data" in server["extensions"]
    meta = triton.get_model_metadata("echo")
    assert meta["name"] == "echo" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "INPUT0", "datatype": "FP32", "shape": [-1, -1]}]
    assert triton.get_model_metadata("echo", "1")["name"] == "echo"
    assert triton.get_model_repository_index() == [
        {"name": "echo", "version": "1", "state": "READY"}
    ]
    stats = triton.get_inference_statistics("echo")["model_stats"][0]
    assert stats["name"] == "echo" and stats["inference_stats"]["success"]["count"] >= 0
    metrics = httpx.get(worker.url + "/metrics").text
    assert 'medserve_worker_model_ready{model="echo"} 1.0' in metrics
    assert "medserve_worker_batch_size_bucket" in metrics


def test_malformed_body_is_400_with_a_message_and_the_next_request_works(
    worker: WorkerProcess,
) -> None:
    url = worker.url + "/v2/models/echo/infer"
    cases = [
        (b"{not json", {}),
        (orjson.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [2]}]}), {}),
        (b'{"inputs": []}xx', {"Inference-Header-Content-Length": "999"}),
        (b"garbage", {"Content-Encoding": "gzip"}),
        (orjson.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 1],
                                   "data": [1]}], "parameters": {"priority": "urgent"}}), {}),
    ]  # fmt: skip
    for body, headers in cases:
        resp = httpx.post(url, content=body, headers=headers)
        assert resp.status_code == 400, resp.text
        assert resp.headers["x-medserve-error-code"] == "bad_request"
        message = resp.json()["error"]
        assert isinstance(message, str) and len(message) > 10 and "Traceback" not in message
        _assert_still_serves(worker)


def test_oversized_body_and_decompression_bomb_are_refused(worker: WorkerProcess) -> None:
    url = worker.url + "/v2/models/echo/infer"
    bomb = gzip.compress(b"\0" * (64 << 20), compresslevel=9)  # 64 MiB inflated, limit 8 MiB
    resp = httpx.post(url, content=bomb, headers={"Content-Encoding": "gzip"})
    assert resp.status_code == 413 and "decompressed" in resp.json()["error"]
    resp = httpx.post(url, content=b"0" * (9 << 20))
    assert resp.status_code == 413 and "at most" in resp.json()["error"]
    _assert_still_serves(worker)


def test_unknown_model_and_route_are_404_and_invalid_input_rebuilds_its_type(
    triton: triton_http.InferenceServerClient, worker: WorkerProcess
) -> None:
    x = np.ones((1, 2), np.float32)
    with pytest.raises(InferenceServerException) as info:
        triton.infer("no-such-model", [_echo_input(x, True)])
    assert info.value.status() == "404" and "echo" in info.value.message()
    assert httpx.get(worker.url + "/v2/nowhere").status_code == 404
    with SyncOIPClient(worker.url) as client:
        with pytest.raises(ModelNotFound):
            client.infer("no-such-model", {"INPUT0": x})
        with pytest.raises(InvalidInput, match="INPUT0"):
            client.infer("echo", {"WRONG": x})
        with pytest.raises(InvalidInput, match="NaN"):
            client.infer("echo", {"INPUT0": np.array([[np.nan]], np.float32)})
    _assert_still_serves(worker)


def test_async_client_rebuilds_error_types_and_reads_index(worker: WorkerProcess) -> None:
    async def main() -> None:
        async with OIPClient(worker.url) as client:
            assert await client.ready("echo") and not await client.ready("nope")
            assert (await client.index())[0]["state"] == "READY"
            with pytest.raises(ModelNotFound):
                await client.infer("nope", {"INPUT0": np.ones((1, 1), np.float32)})
            with pytest.raises(BadRequest):
                await client.infer("echo", {"INPUT0": np.ones((1, 1))}, priority="urgent")
            spec = {"name": "INPUT0", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}
            status, headers, body = await client.request(
                "POST",
                "/v2/models/echo/infer",
                orjson.dumps({"inputs": [spec]}),
                {"Content-Type": "application/json", "X-Request-ID": "raw-1"},
            )
            assert status == 200 and headers["x-request-id"] == "raw-1"
            assert orjson.loads(body)["outputs"][0]["data"] == [1.0, 2.0]

    asyncio.run(main())


def test_request_id_is_echoed_or_generated_and_logged_without_bodies(
    worker: WorkerProcess,
) -> None:
    url = worker.url + "/v2/models/echo/infer"
    secret = "PATIENT-SECRET-4711"
    body = orjson.dumps({"inputs": [{"name": "INPUT0", "datatype": "BYTES", "shape": [1],
                                     "data": [secret]}]})  # fmt: skip
    resp = httpx.post(url, content=body, headers={"X-Request-ID": "rid-abc-123"})
    # a BYTES tensor where the metadata says FP32: 400 (as Triton and KServe answer), its code kept
    assert resp.status_code == 400 and resp.headers["x-request-id"] == "rid-abc-123"
    assert resp.headers["x-medserve-error-code"] == "invalid_input"
    assert resp.headers["content-type"] == "application/json"
    generated = httpx.get(worker.url + "/v2/health/live").headers["x-request-id"]
    assert len(generated) == 32
    resp = httpx.post(url, content=b"{broken", headers={"X-Request-ID": "rid-broken"})
    assert resp.status_code == 400
    logs = worker.logs()
    assert secret not in logs and "Traceback" not in logs
    lines = [orjson.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert lines and all("msg" in line for line in lines)
    refused = {line.get("request_id"): line for line in lines if line.get("status")}
    assert refused["rid-abc-123"]["status"] == 400
    assert refused["rid-broken"]["code"] == "bad_request"
