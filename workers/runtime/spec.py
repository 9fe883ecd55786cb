"""OIP tensor metadata shared by adapters, contracts and the gateway (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: name, OIP datatype, shape (-1 = variable).

    `accepts` lists further datatypes an input takes (e.g. UINT8 pixels beside FP32); the
    metadata advertises `datatype`."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    optional: bool = False
    accepts: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @property
    def datatypes(self) -> tuple[str, ...]:
        return (self.datatype, *self.accepts)
