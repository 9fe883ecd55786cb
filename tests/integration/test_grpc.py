"""OIP v2 over gRPC: `tritonclient.grpc` unchanged against a worker and through the gateway,
with the same batcher, auth, deadlines and error mapping as HTTP."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from core.net import free_port


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"gateway": free_port(), "worker": free_port()}


@pytest.fixture(scope="module")
def stack(embedded_stack, ports):
    return embedded_stack(["echo"], grpc_port=ports["gateway"], worker_grpc_port=ports["worker"])


@pytest.fixture(scope="module")
def secured(embedded_stack):
    return embedded_stack(["echo"], grpc_port=free_port(), api_keys="k1:clinic")


def _client(port: int) -> triton_grpc.InferenceServerClient:
    return triton_grpc.InferenceServerClient(f"127.0.0.1:{port}")


def _input(x: np.ndarray, datatype: str = "FP32") -> triton_grpc.InferInput:
    tensor = triton_grpc.InferInput("INPUT0", list(x.shape), datatype)
    tensor.set_data_from_numpy(x)
    return tensor


@pytest.mark.parametrize("target", ["gateway", "worker"])
def test_tritonclient_grpc_infers_and_reads_metadata(stack, ports, target: str) -> None:
    client = _client(ports[target])
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("echo")
    metadata = client.get_model_metadata("echo", as_json=True)
    assert metadata["inputs"][0] == {"name": "INPUT0", "datatype": "FP32", "shape": ["-1", "-1"]}
    config = client.get_model_config("echo", as_json=True)["config"]
    assert config["max_batch_size"] == 32 and config["input"][0]["data_type"] == "TYPE_FP32"
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    result = client.infer("echo", [_input(x)], request_id="grpc-1")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)
    response = result.get_response(as_json=True)
    assert response["id"] == "grpc-1" and response["parameters"]["weights"]["string_param"]
    index = {m["name"]: m for m in client.get_model_repository_index(as_json=True)["models"]}
    assert index["echo"]["state"] == "READY"
    client.close()


@pytest.mark.parametrize("target", ["gateway", "worker"])
def test_grpc_errors_map_to_tritons_codes(stack, ports, target: str) -> None:
    client = _client(ports[target])
    x = np.ones((1, 2), np.float32)
    cases = [
        (lambda: client.infer("nope", [_input(x)]), "NOT_FOUND", "not served"),
        (lambda: client.infer("echo", [_input(x.astype(np.int32), "INT32")]), "INVALID_ARGUMENT",
         "must be FP32, not INT32"),
        (lambda: client.infer("echo", [_input(x)], parameters={"delay_ms": 3000},
                              client_timeout=0.5), "DEADLINE_EXCEEDED", ""),
    ]  # fmt: skip
    for call, code, text in cases:
        with pytest.raises(InferenceServerException) as caught:
            call()
        assert code in str(caught.value.status()) and text in caught.value.message()
    np.testing.assert_array_equal(client.infer("echo", [_input(x)]).as_numpy("OUTPUT0"), x)
    client.close()


def test_the_grpc_gateway_applies_api_keys(secured) -> None:
    port = int(secured.gateway.env["MEDSERVE_GRPC_PORT"])
    client = _client(port)
    assert client.is_server_live()  # probes stay open
    x = np.ones((1, 2), np.float32)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("echo", [_input(x)])
    assert "UNAUTHENTICATED" in str(caught.value.status())
    result = client.infer("echo", [_input(x)], headers={"authorization": "Bearer k1"})
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)
    client.close()
