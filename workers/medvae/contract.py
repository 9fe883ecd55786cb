"""MedVAE's contract (torch-free): tensors, parameters and manifest options, 2D and 3D.

Inputs (one of): `IMAGE` BYTES [1] (PNG, JPEG, single-frame DICOM, NIfTI, .npy file),
`PIXELS` numeric ([H,W], [C,H,W] or [N,C,H,W] for 2D; [X,Y,Z] in RAS order for 3D), `LATENT`
FP32 ([C,h,w] / [N,C,h,w] / [C,x,y,z]) or `LATENT_FILE` BYTES [1] (.npy, safetensors, NIfTI).
Outputs: `LATENT` or `IMAGE` (FP32, leading batch axis), or `FILE` BYTES when `format` is given;
metadata travels in the response parameters.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from workers.runtime.params import OIPParams
from workers.runtime.spec import TensorSpec

FORMATS_ENCODE = ("npy", "safetensors", "nifti")
FORMATS_DECODE = ("png", "nifti", "npy")
NUMERIC = ("UINT8", "UINT16", "INT16", "INT32", "FP16", "FP64")

INPUTS = [
    TensorSpec("IMAGE", "BYTES", (1,), optional=True),
    TensorSpec("PIXELS", "FP32", (-1, -1, -1), optional=True, accepts=NUMERIC),
    TensorSpec("LATENT", "FP32", (-1, -1, -1, -1), optional=True, accepts=NUMERIC),
    TensorSpec("LATENT_FILE", "BYTES", (1,), optional=True),
]
OUTPUTS = [
    TensorSpec("LATENT", "FP32", (-1, -1, -1, -1)),
    TensorSpec("IMAGE", "FP32", (-1, -1, -1, -1)),
    TensorSpec("FILE", "BYTES", (-1,)),
]


class Params(OIPParams):
    """Encode and decode parameters (each route sends the ones it documents)."""

    modality: Literal["xray", "ct", "mri"] | None = None
    latent: Literal["s1", "s2"] = "s1"
    sample: bool = False
    seed: int | None = Field(None, ge=0, lt=2**63)
    format: Literal["npy", "safetensors", "nifti", "png"] | None = None
    crop: Literal["foreground", "none"] = "foreground"
    roi_size: int | None = Field(None, ge=16, le=256, multiple_of=16)
    bits: Literal[8, 16] = 8
    spacing: list[float] | None = Field(None, min_length=3, max_length=3)
    value_range: list[float] | None = Field(None, min_length=2, max_length=2)
    affine: list[list[float]] | None = Field(None, min_length=4, max_length=4)


class Options(BaseModel):
    """The manifest's `adapter` block."""

    model_config = ConfigDict(extra="forbid")

    variant: Literal[
        "medvae_4_1_2d", "medvae_4_3_2d", "medvae_4_4_2d", "medvae_8_1_2d", "medvae_8_4_2d",
        "medvae_4_1_3d", "medvae_8_1_3d",
    ]  # fmt: skip
    merge_lora: bool = True
    # Sliding-window inference: window side (voxels) and overlap bound the memory per window.
    roi_size: int = Field(96, ge=16, le=256, multiple_of=16)
    overlap: float = Field(0.25, ge=0.0, lt=1.0)
    sw_batch_size: int = Field(1, ge=1)


class Tiny(BaseModel):
    """The manifest's `tiny` block: the random same-architecture build for tests."""

    model_config = ConfigDict(extra="forbid")

    ch: int = Field(32, ge=32, multiple_of=32)
    num_res_blocks: int = Field(1, ge=1)
