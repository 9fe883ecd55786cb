"""The gateway's OIP v2 routes, forwarded to a real worker process: tritonclient works unchanged."""

from __future__ import annotations

import gzip

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException


@pytest.fixture(scope="module")
def stack(embedded_stack):
    return embedded_stack(["echo"])


@pytest.fixture
def triton(stack):
    client = triton_http.InferenceServerClient(stack.url.removeprefix("http://"))
    yield client
    client.close()


def _input(x: np.ndarray, binary: bool) -> triton_http.InferInput:
    tensor = triton_http.InferInput("INPUT0", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    return tensor


def _next_request_works(stack) -> None:
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 2], "data": [5, 6]}]}
    answer = stack.client.post("/v2/models/echo/infer", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == [5.0, 6.0]


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_infers_through_the_gateway(triton, binary: bool) -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    outputs = [triton_http.InferRequestedOutput("OUTPUT0", binary_data=binary)]
    result = triton.infer("echo", [_input(x, binary)], outputs=outputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)
    response = result.get_response()
    assert response["model_name"] == "echo"
    assert response["parameters"]["weights"] == "random-tiny"
    assert response["parameters"]["weights_digest"].startswith("sha256:")


def test_tritonclient_gzip_both_ways(triton) -> None:
    x = np.ones((2, 64), dtype=np.float32)
    result = triton.infer(
        "echo",
        [_input(x, True)],
        request_compression_algorithm="gzip",
        response_compression_algorithm="gzip",
    )
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)


def test_server_and_model_metadata_and_readiness_answer_as_oip_says(stack, triton) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("echo")
    assert not triton.is_model_ready("no-such-model")
    server = triton.get_server_metadata()
    assert server["name"] == "medserve" and "binary_tensor_data" in server["extensions"]
    meta = triton.get_model_metadata("echo")
    assert meta["name"] == "echo"
    assert meta["inputs"][0] == {"name": "INPUT0", "datatype": "FP32", "shape": [-1, -1]}
    assert triton.get_model_metadata("echo", model_version="1")["name"] == "echo"
    index = triton.get_model_repository_index()
    assert {"name": "echo", "state": "READY", "version": "1"} in index
    ready = stack.client.get("/v2/models/echo/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True


def test_unknown_model_is_404_with_an_oip_error(stack, triton) -> None:
    answer = stack.client.post("/v2/models/no-such-model/infer", content=b"{}")
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert isinstance(error, str) and "echo" in error  # names what is served
    with pytest.raises(InferenceServerException) as raised:
        triton.infer("no-such-model", [_input(np.ones((1, 1), np.float32), True)])
    assert "not served" in str(raised.value)
    assert stack.client.get("/v2/models/no-such-model").status_code == 404
    _next_request_works(stack)


@pytest.mark.parametrize(
    ("body", "headers", "fragment"),
    [
        (b"{not json", {}, "not valid JSON"),
        (b'{"inputs": 3}', {}, "'inputs' must be a list"),
        (
            orjson.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [2, 2],
                                      "data": [1, 2, 3]}]}),
            {},
            "needs 4 values",
        ),
        (b'{"inputs": []}', {"Inference-Header-Content-Length": "999"}, "Inference-Header"),
    ],
)  # fmt: skip
def test_malformed_body_is_400_with_a_message_and_the_next_request_works(
    stack, body: bytes, headers: dict[str, str], fragment: str
) -> None:
    answer = stack.client.post("/v2/models/echo/infer", content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert fragment in answer.json()["error"]
    _next_request_works(stack)


def test_binary_request_without_content_type_is_forwarded_byte_for_byte(stack) -> None:
    from workers.runtime.oip import decode_response, encode_request

    x = np.linspace(-1, 1, 10, dtype=np.float32).reshape(2, 5)
    body, header_length = encode_request({"INPUT0": x}, request_id="abc")
    compressed = gzip.compress(body)
    raw = httpx.post(
        stack.url + "/v2/models/echo/versions/1/infer",
        content=compressed,
        headers={
            "Inference-Header-Content-Length": str(header_length),
            "Content-Encoding": "gzip",
        },
    )
    assert raw.status_code == 200, raw.text
    assert "content-type" in raw.headers
    decoded = decode_response(raw.content, int(raw.headers["inference-header-content-length"]))
    assert decoded.id == "abc"
    np.testing.assert_array_equal(decoded.outputs["OUTPUT0"], x)


def test_tritonclient_reads_the_model_config_and_uses_the_repository(triton, stack) -> None:
    config = triton.get_model_config("echo")
    assert config["name"] == "echo" and config["max_batch_size"] == 32
    assert config["input"][0] == {"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [-1],
                                  "optional": False}  # fmt: skip
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 2000
    assert "model_configuration" in triton.get_server_metadata()["extensions"]
    triton.unload_model("echo")
    x = np.ones((1, 2), np.float32)
    with pytest.raises(InferenceServerException) as info:
        triton.infer("echo", [_input(x, True)])
    assert info.value.status() == "503" and "unloaded" in info.value.message()
    triton.load_model("echo")
    np.testing.assert_array_equal(triton.infer("echo", [_input(x, True)]).as_numpy("OUTPUT0"), x)
    stack.wait_ready()  # discovery sees it ready again


def test_malformed_and_mistyped_oip_requests_are_400_with_a_json_content_type(stack) -> None:
    wrong_type = {"inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [1, 2],
                              "data": [1, 2]}]}  # fmt: skip
    for body in (b"{not json", orjson.dumps(wrong_type)):
        answer = stack.client.post("/v2/models/echo/infer", content=body)
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"] == "application/json"
    assert "must be FP32, not INT32" in answer.json()["error"]
    missing = stack.client.get("/v2/models/nope")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"
