"""Echo's OIP contract: FP32 `INPUT0` [batch, n] in, `OUTPUT0` (input times `scale`) out."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from workers.runtime.params import OIPParams
from workers.runtime.spec import TensorSpec

INPUTS = [TensorSpec("INPUT0", "FP32", (-1, -1))]
OUTPUTS = [TensorSpec("OUTPUT0", "FP32", (-1, -1))]
MAX_DELAY_MS = 60_000.0


class Params(OIPParams):
    delay_ms: float = Field(0.0, ge=0.0, le=MAX_DELAY_MS, description="Sleep per batch (tests).")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["echo"] = "echo"
