"""Bodies of `POST /v1/medvae/encode` and `POST /v1/medvae/decode`.

Each route takes JSON (file bytes base64 in `image_b64` / `latent_b64`, or an OIP-style
`tensor`) or multipart/form-data (the file in a part named `file`, the other fields as form
fields). Responses are JSON with the file base64-encoded, or the raw file (`response=file`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from service.schemas.common import Provenance

TensorType = Literal["FP32", "FP64", "FP16", "UINT8", "UINT16", "INT16", "INT32"]


class Tensor(BaseModel):
    """An OIP-style tensor: shape, datatype and row-major data (flat or nested)."""

    model_config = ConfigDict(extra="forbid")

    shape: list[int] = Field(min_length=1, max_length=5)
    datatype: TensorType = "FP32"
    data: list[Any]


class EncodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("medvae-4-1-2d", description="A MedVAE model, e.g. medvae-4-1-2d.")
    modality: Literal["xray", "ct", "mri"] | None = Field(
        None, description="xray (2D default); ct or mri (required by 3D models)."
    )
    image_base64: str | None = Field(
        None,
        validation_alias=AliasChoices("image_base64", "image_b64"),
        description="The file, base64: PNG, JPEG, single-frame DICOM, NIfTI (.nii/.nii.gz). "
        "`image_b64` is accepted too.",
    )
    tensor: Tensor | None = Field(
        None, description="Pixels instead of a file: [H,W]/[C,H,W] (2D) or [X,Y,Z] in RAS (3D)."
    )
    latent: Literal["s1", "s2"] = Field(
        "s1",
        description="s1: stage-1 posterior (decodable); s2: stage-2 projection that the "
        "released 2D forward returns.",
    )
    sample: bool = Field(False, description="Sample the posterior instead of its mean.")
    seed: int | None = Field(None, ge=0, description="Seed for sample=true (returned if unset).")
    format: Literal["npy", "safetensors", "nifti"] | None = Field(
        None,
        description="Latent file format: npy for s1 and safetensors for s2 by default; nifti "
        "is for 3D models. s2 latents are safetensors only (the file records the latent kind).",
    )
    crop: Literal["foreground", "none"] = Field(
        "foreground", description="3D: released foreground crop, or keep the whole volume."
    )
    roi_size: int | None = Field(
        None, ge=16, le=256, description="3D sliding-window side (multiple of 16)."
    )
    spacing: list[float] | None = Field(
        None, min_length=3, max_length=3, description="3D tensor input: voxel size in mm."
    )
    response: Literal["json", "file"] = Field("json", description="json, or the raw file.")

    @model_validator(mode="after")
    def _one_input(self) -> EncodeRequest:
        if (self.image_base64 is None) == (self.tensor is None):
            raise ValueError("send exactly one of image_base64 (or a multipart file) and tensor")
        return self


class DecodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("medvae-4-1-2d", description="The MedVAE model that encoded the latent.")
    modality: Literal["xray", "ct", "mri"] | None = Field(
        None, description="3D: ct (output in HU) or mri; read from the latent file when present."
    )
    latent_base64: str | None = Field(
        None,
        validation_alias=AliasChoices("latent_base64", "latent_b64"),
        description="The latent file, base64: .npy, safetensors or NIfTI from encode. "
        "`latent_b64` is accepted too.",
    )
    tensor: Tensor | None = Field(None, description="The latent as a tensor: [C,h,w] or [C,x,y,z].")
    format: Literal["png", "nifti", "npy"] | None = Field(
        None, description="Image format: png (2D default), nifti (3D default) or npy."
    )
    value_range: list[float] | None = Field(
        None, min_length=2, max_length=2, description="MRI: the original [min, max] to restore."
    )
    affine: list[list[float]] | None = Field(
        None, description="3D: the latent's 4x4 affine when the latent is not a NIfTI file."
    )
    bits: Literal[8, 16] = Field(8, description="PNG bit depth (16: grayscale only).")
    response: Literal["json", "file"] = "json"

    @model_validator(mode="after")
    def _one_input(self) -> DecodeRequest:
        if (self.latent_base64 is None) == (self.tensor is None):
            raise ValueError("send exactly one of latent_base64 (or a multipart file) and tensor")
        return self


class EncodeResponse(Provenance):
    latent: Literal["s1", "s2"]
    shape: list[int]
    dtype: str = "float32"
    format: str
    media_type: str
    factor: int = Field(description="Downsampling factor per spatial axis.")
    modality: str
    sample: bool
    seed: int | None = None
    input_shape: list[int] = Field(description="Shape after preprocessing (crop for 3D).")
    affine: list[list[float]] | None = Field(
        None, description="3D: the latent's voxel-to-RAS affine."
    )
    value_range: list[float] | None = Field(None, description="3D: input min and max.")
    data_base64: str = Field(description="The latent file, base64.")
    data_b64: str = Field(description="The same as data_base64 (deprecated name).")


class DecodeResponse(Provenance):
    shape: list[int]
    format: str
    media_type: str
    modality: str
    value_unit: str = Field(description="unit ([0,1]) or HU (CT).")
    synthetic: bool = Field(True, description="Decoded images are reconstructions.")
    affine: list[list[float]] | None = None
    data_base64: str = Field(description="The image file, base64.")
    data_b64: str = Field(description="The same as data_base64 (deprecated name).")
