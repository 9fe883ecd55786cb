"""The OIP v2 codec: JSON and binary tensors, BYTES, gzip/deflate, malformed bodies, bombs."""

from __future__ import annotations

import gzip
import struct
import zlib

import numpy as np
import orjson
import pytest
import tritonclient.http as triton_http

from core.errors import BadRequest, PayloadTooLarge
from workers.runtime.oip import (
    InferResponse,
    decode_request,
    decode_response,
    decompress,
    encode_request,
    encode_response,
)

DTYPE_CASES = [
    np.array([[1.5, -2.0], [3.25, 4.0]], dtype=np.float32),
    np.array([1, 2, 3], dtype=np.int64),
    np.array([[0, 255]], dtype=np.uint8),
    np.array([True, False]),
    np.array([1.0, 2.0], dtype=np.float16),
    np.array([1e300], dtype=np.float64),
]


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("array", DTYPE_CASES, ids=lambda a: str(a.dtype))
def test_request_round_trip(array: np.ndarray, binary: bool) -> None:
    body, length = encode_request({"X": array}, parameters={"k": 1}, request_id="r1", binary=binary)
    assert (length is not None) == binary
    request = decode_request(body, length)
    assert request.id == "r1" and request.parameters["k"] == 1
    np.testing.assert_array_equal(request.inputs["X"], array)
    assert request.inputs["X"].dtype == array.dtype


def test_bytes_tensors_round_trip_in_both_encodings() -> None:
    array = np.array([b"hello", b"", "w\u00f6rld".encode()], dtype=np.object_)
    for binary in (True, False):
        body, length = encode_request({"T": array}, binary=binary)
        assert list(decode_request(body, length).inputs["T"]) == list(array)


def test_tritonclient_binary_body_decodes() -> None:
    """The exact bytes tritonclient sends (binary input, no Content-Type) decode correctly."""
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    inp = triton_http.InferInput("INPUT0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    out = triton_http.InferRequestedOutput("OUTPUT0", binary_data=True)
    body, length = triton_http.InferenceServerClient.generate_request_body(
        [inp], outputs=[out], request_id="7", parameters={"priority_hint": "x"}
    )
    request = decode_request(body, length)
    np.testing.assert_array_equal(request.inputs["INPUT0"], x)
    assert request.outputs == ["OUTPUT0"] and request.binary_outputs == {"OUTPUT0"}
    assert request.id == "7"


def test_response_binary_when_asked_and_readable_by_tritonclient() -> None:
    x = np.arange(4, dtype=np.float32).reshape(2, 2)
    body, length = encode_request({"INPUT0": x}, outputs=["OUTPUT0"])
    request = decode_request(body, length)
    response = InferResponse("echo", {"OUTPUT0": x * 2}, model_version="1", id="a")
    data, header_length = encode_response(response, request)
    assert header_length is not None
    result = triton_http.InferenceServerClient.parse_response_body(
        data, header_length=header_length
    )
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x * 2)
    back = decode_response(data, header_length)
    np.testing.assert_array_equal(back.outputs["OUTPUT0"], x * 2)
    # a JSON request gets a JSON response
    plain = decode_request(orjson.dumps({"inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [2, 2], "data": [[0, 1], [2, 3]]}
    ]}))  # fmt: skip
    data, header_length = encode_response(response, plain)
    assert header_length is None
    assert orjson.loads(data)["outputs"][0]["data"] == [0.0, 2.0, 4.0, 6.0]


def test_gzip_and_deflate_bodies_decode_within_the_limit() -> None:
    body, _ = encode_request({"X": np.ones((4, 4), np.float32)}, binary=False)
    assert decompress(gzip.compress(body), "gzip", 1 << 20) == body
    assert decompress(zlib.compress(body), "deflate", 1 << 20) == body
    with pytest.raises(BadRequest, match="gzip"):
        decompress(b"not gzip at all", "gzip", 1 << 20)
    with pytest.raises(BadRequest, match="br"):
        decompress(body, "br", 1 << 20)


def test_decompression_bomb_is_refused_before_inflating_it_all() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < 1 << 20
    with pytest.raises(PayloadTooLarge):
        decompress(bomb, "gzip", 1 << 20)


def _req(doc: object, tail: bytes = b"") -> tuple[bytes, int | None]:
    head = orjson.dumps(doc)
    return head + tail, (len(head) if tail else None)


def _one(tail: bytes = b"", **spec: object) -> tuple[bytes, int | None]:
    """A request with one input tensor named x built from `spec`."""
    return _req({"inputs": [{"name": "x", **spec}]}, tail)


def _bin(size: int) -> dict[str, int]:
    return {"binary_data_size": size}


MALFORMED = [
    ("not json", (b"{nope", None), "not valid JSON"),
    ("array body", _req([1, 2]), "JSON object"),
    ("no inputs", _req({"inputs": []}), "empty"),
    ("inputs not list", _req({"inputs": {}}), "list"),
    ("bad datatype", _one(datatype="FP8", shape=[1], data=[1]), "datatype"),
    ("negative shape", _one(datatype="FP32", shape=[-1], data=[1]), "non-negative"),
    ("count mismatch", _one(datatype="FP32", shape=[3], data=[1, 2]), "needs 3 values"),
    ("wrong type", _one(datatype="INT32", shape=[1], data=["a"]), "does not fit"),
    ("no data", _one(datatype="FP32", shape=[1]), "give 'data'"),
    ("binary too short", _one(b"\0" * 4, datatype="FP32", shape=[2], parameters=_bin(8)),
     "runs past"),
    ("binary size mismatch", _one(b"\0" * 8, datatype="FP32", shape=[3], parameters=_bin(8)),
     "needs 12 bytes"),
    ("stray bytes", _one(b"\0" * 6, datatype="FP32", shape=[1], parameters=_bin(4)),
     "not claimed"),
    ("bytes element overrun",
     _one(struct.pack("<I", 99) + b"ab", datatype="BYTES", shape=[1], parameters=_bin(6)),
     "longer than"),
    ("header length past body", (b"{}", 50), "body has 2 bytes"),
    ("parameters not object",
     _req({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
           "parameters": [1]}),
     "'parameters' must be an object"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "message"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_bodies_are_bad_requests_with_a_message(
    body: tuple[bytes, int | None], message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        decode_request(*body)


def test_shape_claiming_too_many_elements_is_refused_before_allocating() -> None:
    doc = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1 << 20, 1 << 20], "data": [1]}]}
    with pytest.raises(PayloadTooLarge):
        decode_request(orjson.dumps(doc))
