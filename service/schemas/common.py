"""Schema parts every family's response shares: which model and weights made it."""

from __future__ import annotations

from pydantic import BaseModel, Field

BASE64_FIELD = "data_base64"  # the one name of base64 file contents in responses


class Provenance(BaseModel):
    """Which model, version and weights produced a response."""

    model: str = Field(description="The served model's name.")
    version: str | None = Field(None, description="The model's version in the store.")
    weights: str | None = Field(
        None, description="pulled | random-tiny | random-full | external (an engine's own)."
    )
    weights_digest: str | None = Field(None, description="sha256 over the weight files.")
