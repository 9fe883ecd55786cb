"""OIP v2 over gRPC: KServe v2 / Triton protobuf messages to and from the platform's
`InferRequest` / `InferResponse`, and platform errors to gRPC status codes.

The message definitions are the ones `tritonclient[grpc]` ships (`tritonclient.grpc.service_pb2`,
generated from Triton's `grpc_service.proto`), so `tritonclient.grpc` works unchanged. Tensors
travel in `raw_input_contents` / `raw_output_contents` (little-endian; BYTES elements
length-prefixed, as in the HTTP binary extension) or in typed `contents`.
"""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb

from core.errors import BadRequest, MedserveError, http_status
from workers.runtime.oip import (
    DTYPES,
    InferRequest,
    InferResponse,
    bytes_elements,
    datatype_of,
    serialize_bytes,
)

# HTTP status of a platform error -> the gRPC code Triton uses for it.
GRPC_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    409: grpc.StatusCode.ALREADY_EXISTS,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
# typed `contents` field of each datatype (when a client does not send raw contents)
CONTENT_FIELDS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # fmt: skip


def model_config_message(config: dict[str, Any]) -> Any:
    """Triton's model configuration dict as the `ModelConfig` protobuf."""
    return json_format.ParseDict(config, mc.ModelConfig(), ignore_unknown_fields=True)


def grpc_code(error: MedserveError) -> grpc.StatusCode:
    return GRPC_CODES.get(http_status(error), grpc.StatusCode.INTERNAL)


def parameter_value(param: Any) -> Any:
    kind = param.WhichOneof("parameter_choice")
    return getattr(param, kind) if kind else None


def set_parameter(target: Any, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_param = value
    elif isinstance(value, int):
        target.int64_param = value
    elif isinstance(value, float):
        target.double_param = value
    else:
        target.string_param = str(value)


def _tensor(spec: Any, raw: bytes | None) -> np.ndarray:
    where = f"input '{spec.name}'"
    if spec.datatype not in DTYPES:
        raise BadRequest(f"{where}: 'datatype' must be one of {', '.join(DTYPES)}")
    shape = tuple(int(d) for d in spec.shape)
    if any(d < 0 for d in shape):
        raise BadRequest(f"{where}: the shape must not be negative")
    count = int(np.prod(shape, dtype=np.int64))
    if raw is not None:
        if spec.datatype == "BYTES":
            return bytes_elements(raw, count, where).reshape(shape)
        dtype = DTYPES[spec.datatype].newbyteorder("<")
        if len(raw) != count * dtype.itemsize:
            raise BadRequest(f"{where}: shape {list(shape)} needs {count * dtype.itemsize} bytes")
        return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(DTYPES[spec.datatype])
    field = CONTENT_FIELDS.get(spec.datatype)
    if field is None:
        raise BadRequest(f"{where}: send {spec.datatype} data as raw_input_contents")
    values = list(getattr(spec.contents, field))
    if len(values) != count:
        raise BadRequest(f"{where}: shape {list(shape)} needs {count} values, got {len(values)}")
    if spec.datatype == "BYTES":
        array = np.empty(count, dtype=np.object_)
        array[:] = values
        return array.reshape(shape)
    return np.asarray(values, dtype=DTYPES[spec.datatype]).reshape(shape)


def request_from_proto(message: Any) -> InferRequest:
    """A `ModelInferRequest` as the platform's InferRequest (BadRequest when malformed)."""
    raws = list(message.raw_input_contents)
    if raws and len(raws) != len(message.inputs):
        raise BadRequest("raw_input_contents must hold one entry per input")
    inputs = {}
    for index, spec in enumerate(message.inputs):
        inputs[spec.name] = _tensor(spec, raws[index] if raws else None)
    if not inputs:
        raise BadRequest("'inputs' is empty; send at least one input tensor")
    parameters = {k: parameter_value(v) for k, v in message.parameters.items()}
    return InferRequest(
        inputs=inputs,
        id=message.id or None,
        parameters=parameters,
        outputs=[o.name for o in message.outputs],
    )


def response_to_proto(response: InferResponse, wanted: list[str]) -> Any:
    """An InferResponse as a `ModelInferResponse`, outputs as raw contents."""
    out = pb.ModelInferResponse(model_name=response.model_name,
                                model_version=response.model_version or "",
                                id=response.id or "")  # fmt: skip
    for key, value in response.parameters.items():
        set_parameter(out.parameters[key], value)
    for name in wanted or list(response.outputs):
        if name not in response.outputs:
            known = list(response.outputs)
            raise BadRequest(f"output '{name}' does not exist; ask for one of {known}")
        array = np.asarray(response.outputs[name])
        datatype = datatype_of(array)
        out.outputs.add(name=name, datatype=datatype, shape=list(array.shape))
        if datatype == "BYTES":
            out.raw_output_contents.append(serialize_bytes(array))
        else:
            little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
            out.raw_output_contents.append(little.tobytes())
    return out
