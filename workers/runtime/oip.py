"""Open Inference Protocol v2 (KServe v2 / Triton REST) codec, JSON and binary-tensor extension.

Pure numpy: used by the worker server, the OIP client, the gateway and jobs. Requests and
responses are `InferRequest` / `InferResponse` with named numpy tensors. Wire format:
https://github.com/kserve/open-inference-protocol (inference_rest.md) and Triton's
`extension_binary_data.md`: a JSON header of `Inference-Header-Content-Length` bytes followed
by raw little-endian tensors; a BYTES element is a 4-byte length then its bytes.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from core.errors import BadRequest, PayloadTooLarge

HEADER_LENGTH = "Inference-Header-Content-Length"
MAX_ELEMENTS = 1 << 31  # refuse tensors claiming more elements than this before allocating

DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
_BY_NUMPY = {dt: name for name, dt in DTYPES.items() if name != "BYTES"}

Parameters = dict[str, Any]


@dataclass
class InferRequest:
    """One decoded inference request."""

    inputs: dict[str, np.ndarray]
    id: str | None = None
    parameters: Parameters = field(default_factory=dict)
    input_parameters: dict[str, Parameters] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    binary_outputs: set[str] = field(default_factory=set)
    binary_all: bool = False
    parsed: Any = None  # the family's Params, once the adapter has parsed `parameters`


@dataclass
class InferResponse:
    """One inference result, as a worker sends it back."""

    model_name: str
    outputs: dict[str, np.ndarray]
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters = field(default_factory=dict)


def datatype_of(array: np.ndarray) -> str:
    if array.dtype == np.object_ or array.dtype.kind in ("S", "U"):
        return "BYTES"
    try:
        return _BY_NUMPY[
            array.dtype.newbyteorder("=") if array.dtype.byteorder == ">" else array.dtype
        ]
    except KeyError:
        raise BadRequest(f"tensors of dtype {array.dtype} are not supported by OIP v2") from None


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo gzip/deflate Content-Encoding, refusing to inflate past `limit` bytes."""
    if not encoding or encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise BadRequest(f"Content-Encoding {encoding!r} is not supported; send gzip or deflate")
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise BadRequest(f"the body is not valid {encoding} data") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(
            f"the decompressed body exceeds {limit} bytes; send a smaller request"
        )
    return out


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise BadRequest(f"{where}: 'shape' must be a list of non-negative integers")
    count = 1
    for d in value:
        count *= d
    if count > MAX_ELEMENTS:
        raise PayloadTooLarge(f"{where}: shape {value} has more than {MAX_ELEMENTS} elements")
    return tuple(value)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        out: list[Any] = []
        for item in data:
            out.extend(_flatten(item))
        return out
    return data


def bytes_elements(raw: bytes, count: int, where: str) -> np.ndarray:
    out = np.empty(count, dtype=np.object_)
    offset = 0
    for i in range(count):
        if offset + 4 > len(raw):
            raise BadRequest(f"{where}: BYTES tensor data ends early (element {i})")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise BadRequest(f"{where}: BYTES element {i} is longer than the data sent")
        out[i] = raw[offset : offset + length]
        offset += length
    if offset != len(raw):
        raise BadRequest(f"{where}: {len(raw) - offset} stray bytes after the BYTES elements")
    return out


def serialize_bytes(array: np.ndarray) -> bytes:
    parts = []
    for item in array.reshape(-1):
        raw = item if isinstance(item, bytes) else str(item).encode()
        parts.append(struct.pack("<I", len(raw)))
        parts.append(raw)
    return b"".join(parts)


def _tensor_from_json(spec: dict[str, Any], where: str) -> np.ndarray:
    datatype = spec.get("datatype")
    if datatype not in DTYPES:
        raise BadRequest(f"{where}: 'datatype' must be one of {', '.join(DTYPES)}")
    shape = _shape(spec.get("shape"), where)
    if "data" not in spec:
        raise BadRequest(f"{where}: give 'data', or 'parameters.binary_data_size' for binary")
    flat = _flatten(spec["data"])
    count = math.prod(shape)
    if len(flat) != count:
        raise BadRequest(f"{where}: shape {list(shape)} needs {count} values, got {len(flat)}")
    if datatype == "BYTES":
        array = np.empty(count, dtype=np.object_)
        for i, item in enumerate(flat):
            if not isinstance(item, str | bytes):
                raise BadRequest(f"{where}: BYTES data must be strings")
            array[i] = item.encode() if isinstance(item, str) else item
        return array.reshape(shape)
    try:
        return np.asarray(flat, dtype=DTYPES[datatype]).reshape(shape)
    except (TypeError, ValueError):
        raise BadRequest(f"{where}: data does not fit datatype {datatype}") from None


def _tensor_from_binary(spec: dict[str, Any], raw: bytes, where: str) -> np.ndarray:
    datatype = spec.get("datatype")
    if datatype not in DTYPES:
        raise BadRequest(f"{where}: 'datatype' must be one of {', '.join(DTYPES)}")
    shape = _shape(spec.get("shape"), where)
    count = math.prod(shape)
    if datatype == "BYTES":
        return bytes_elements(raw, count, where).reshape(shape)
    dtype = DTYPES[datatype].newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise BadRequest(
            f"{where}: shape {list(shape)} of {datatype} needs {count * dtype.itemsize} bytes, "
            f"got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(DTYPES[datatype], copy=False)


def _split(body: bytes, header_length: int | None) -> tuple[dict[str, Any], bytes]:
    if header_length is not None:
        if header_length < 0 or header_length > len(body):
            raise BadRequest(
                f"{HEADER_LENGTH} is {header_length} but the body has {len(body)} bytes"
            )
        head, tail = body[:header_length], body[header_length:]
    else:
        head, tail = body, b""
    try:
        doc = orjson.loads(head)
    except orjson.JSONDecodeError:
        raise BadRequest(
            "the body is not valid JSON; send an OIP v2 inference request "
            f"(binary tensors need the {HEADER_LENGTH} header)"
        ) from None
    if not isinstance(doc, dict):
        raise BadRequest("the request must be a JSON object with an 'inputs' list")
    return doc, tail


def _parameters(value: Any, where: str) -> Parameters:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where}: 'parameters' must be an object")
    return value


def _read_tensors(
    specs: Any, tail: bytes, kind: str
) -> tuple[dict[str, np.ndarray], dict[str, Parameters]]:
    if not isinstance(specs, list):
        raise BadRequest(f"'{kind}' must be a list of tensors")
    tensors: dict[str, np.ndarray] = {}
    params: dict[str, Parameters] = {}
    offset = 0
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise BadRequest(f"{kind}[{i}] must be an object with a string 'name'")
        name = spec["name"]
        where = f"{kind[:-1]} '{name}'"
        p = _parameters(spec.get("parameters"), where)
        size = p.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(tail):
                raise BadRequest(f"{where}: binary_data_size {size} runs past the body")
            tensors[name] = _tensor_from_binary(spec, tail[offset : offset + size], where)
            offset += size
        else:
            tensors[name] = _tensor_from_json(spec, where)
        params[name] = {k: v for k, v in p.items() if k != "binary_data_size"}
    if offset != len(tail):
        raise BadRequest(f"{len(tail) - offset} bytes after the tensors were not claimed")
    return tensors, params


def decode_request(body: bytes, header_length: int | None = None) -> InferRequest:
    doc, tail = _split(body, header_length)
    tensors, in_params = _read_tensors(doc.get("inputs"), tail, "inputs")
    if not tensors:
        raise BadRequest("'inputs' is empty; send at least one input tensor")
    parameters = _parameters(doc.get("parameters"), "request")
    outputs: list[str] = []
    binary_outputs: set[str] = set()
    for i, spec in enumerate(doc.get("outputs") or []):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise BadRequest(f"outputs[{i}] must be an object with a string 'name'")
        outputs.append(spec["name"])
        if _parameters(spec.get("parameters"), "output").get("binary_data"):
            binary_outputs.add(spec["name"])
    request_id = doc.get("id")
    return InferRequest(
        inputs=tensors,
        id=str(request_id) if request_id is not None else None,
        parameters=parameters,
        input_parameters=in_params,
        outputs=outputs,
        binary_outputs=binary_outputs,
        binary_all=bool(parameters.get("binary_data_output", False)),
    )


def _tensor_json(name: str, array: np.ndarray, binary: bool) -> tuple[dict[str, Any], bytes]:
    datatype = datatype_of(array)
    spec: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
    if binary:
        raw = (
            serialize_bytes(array)
            if datatype == "BYTES"
            else np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        )
        spec["parameters"] = {"binary_data_size": len(raw)}
        return spec, raw
    if datatype == "BYTES":
        spec["data"] = [
            (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
            for v in array.reshape(-1)
        ]
    else:
        spec["data"] = array.reshape(-1).tolist()
    return spec, b""


def _pack(doc: dict[str, Any], blobs: list[bytes]) -> tuple[bytes, int | None]:
    head = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not any(blobs):
        return head, None
    return head + b"".join(blobs), len(head)


def encode_response(
    response: InferResponse, request: InferRequest | None = None
) -> tuple[bytes, int | None]:
    """Serialize; binary where the request asked for it. Returns (body, header_length|None)."""
    wanted = request.outputs if request and request.outputs else list(response.outputs)
    specs, blobs = [], []
    for name in wanted:
        if name not in response.outputs:
            raise BadRequest(
                f"output '{name}' does not exist; ask for one of {list(response.outputs)}"
            )
        binary = bool(request and (request.binary_all or name in request.binary_outputs))
        spec, raw = _tensor_json(name, response.outputs[name], binary)
        specs.append(spec)
        blobs.append(raw)
    doc: dict[str, Any] = {"model_name": response.model_name, "outputs": specs}
    if response.model_version is not None:
        doc["model_version"] = response.model_version
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    return _pack(doc, blobs)


def encode_request(
    inputs: dict[str, np.ndarray],
    *,
    parameters: Parameters | None = None,
    request_id: str | None = None,
    binary: bool = True,
    outputs: list[str] | None = None,
    binary_outputs: bool = True,
) -> tuple[bytes, int | None]:
    specs, blobs = [], []
    for name, array in inputs.items():
        spec, raw = _tensor_json(name, np.asarray(array), binary)
        specs.append(spec)
        blobs.append(raw)
    doc: dict[str, Any] = {"inputs": specs}
    params = dict(parameters or {})
    if binary_outputs:
        params["binary_data_output"] = True
    if params:
        doc["parameters"] = params
    if request_id is not None:
        doc["id"] = request_id
    if outputs:
        doc["outputs"] = [
            {"name": n, "parameters": {"binary_data": binary_outputs}} for n in outputs
        ]
    return _pack(doc, blobs)


def decode_response(body: bytes, header_length: int | None = None) -> InferResponse:
    doc, tail = _split(body, header_length)
    if "error" in doc:
        raise BadRequest(str(doc["error"]))
    tensors, _ = _read_tensors(doc.get("outputs", []), tail, "outputs")
    return InferResponse(
        model_name=str(doc.get("model_name", "")),
        model_version=doc.get("model_version"),
        id=doc.get("id"),
        outputs=tensors,
        parameters=_parameters(doc.get("parameters"), "response"),
    )
