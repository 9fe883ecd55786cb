"""OIP request parameters parsed into a family's pydantic `Params` (torch-free).

One rule for every family: unknown parameters are refused with the closest valid name, strings
are coerced the way pydantic coerces JSON ("true"/"false", "8" -> 8), lists may travel as JSON
text (OIP parameters are scalars), and protocol parameters (binary data, priority, timeout,
sequences) are left to the runtime.
"""

from __future__ import annotations

import json
import math
import typing
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from core.errors import BadRequest, InvalidInput
from core.validation import describe

# Parameters of the protocol itself (KServe v2 / Triton), read by the runtime, not the model.
PROTOCOL_PARAMETERS = frozenset(
    {"binary_data_output", "priority", "timeout", "sequence_id", "sequence_start",
     "sequence_end", "headers", "triton_enable_empty_final_response"}
)  # fmt: skip


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, dict):
        return True
    return any(_is_list(arg) for arg in typing.get_args(annotation) if arg is not type(None))


class OIPParams(BaseModel):
    """Base of every family's request parameters; frozen once parsed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _json_lists(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, info in cls.model_fields.items():
            value = out.get(name)
            if isinstance(value, str) and _is_list(info.annotation):
                try:
                    out[name] = json.loads(value)
                except ValueError:
                    raise ValueError(f"{name} must be JSON, e.g. [1, 2]") from None
        return out

    @classmethod
    def from_oip(cls, parameters: dict[str, Any], defaults: dict[str, Any] | None = None) -> Self:
        """Parse request parameters over the manifest's `defaults`; InvalidInput when wrong."""
        merged = dict(defaults or {})
        merged.update({k: v for k, v in parameters.items() if k not in PROTOCOL_PARAMETERS})
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            raise InvalidInput(describe(exc, cls, what="parameter")) from None

    def to_oip(self) -> dict[str, Any]:
        """As OIP parameters (lists as JSON text), leaving out unset optional values."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump(mode="json").items():
            if value is None:
                continue
            out[name] = json.dumps(value) if isinstance(value, list | dict) else value
        return out


def parse_priority(header: bytes | None, parameters: dict[str, Any]) -> str:
    """`interactive` (default) or `batch`; tritonclient's integer levels: 0-1 interactive."""
    value: Any = header.decode("latin-1") if header else parameters.get("priority", "interactive")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return "interactive" if value <= 1 else "batch"
    if value in ("interactive", "batch"):
        return str(value)
    raise BadRequest("priority must be 'interactive' or 'batch' (or a Triton priority level)")


def parse_timeout(header: bytes | None, parameters: dict[str, Any], default: float) -> float:
    """Seconds: header X-Medserve-Timeout-S, else parameter `timeout` in microseconds."""
    try:
        if header:
            value = float(header)
        elif parameters.get("timeout") is not None:
            value = float(parameters["timeout"]) / 1e6
        else:
            return default
    except (TypeError, ValueError):
        raise BadRequest(
            "timeout must be a number (X-Medserve-Timeout-S in seconds, or the "
            "'timeout' parameter in microseconds)"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise BadRequest("timeout must be a positive number")
    return value
