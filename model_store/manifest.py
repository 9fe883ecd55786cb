"""Model manifest schema: one YAML file per served model in `model_store/manifests/`.

Data, never code: where the weights come from (Hugging Face repo, pinned revision, files and
their sha256), what input the model accepts, how it is batched and what it needs to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

MANIFEST_DIR = Path(__file__).parent / "manifests"


class SourceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Path inside the repository.")
    sha256: str | None = Field(None, description="Expected digest; verified after download.")
    size: int | None = None


class ExtraSource(BaseModel):
    """Files of another repository a model needs (a tokenizer, a base model's config), pulled
    into `target_dir` inside the model's folder."""

    model_config = ConfigDict(extra="forbid")

    repo_id: str
    revision: str = Field(description="A commit sha or tag; never a moving branch in production.")
    allow_patterns: list[str] = Field(default_factory=list)
    files: list[SourceFile] = Field(
        default_factory=list, description="Paths relative to `target_dir`, with their sha256."
    )
    target_dir: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$",
        description="Folder inside the model's store folder, e.g. Clinical-Longformer.",
    )
    gated: bool = False

    @field_validator("target_dir")
    @classmethod
    def _inside(cls, value: str) -> str:
        if any(part in (".", "..") for part in value.split("/")):
            raise ValueError("target_dir must stay inside the model folder (no '.' or '..')")
        return value


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo_id: str
    revision: str = Field(description="A commit sha or tag; never a moving branch in production.")
    allow_patterns: list[str] = Field(default_factory=list)
    files: list[SourceFile] = Field(default_factory=list)
    gated: bool = False
    extra_sources: list[ExtraSource] = Field(
        default_factory=list, description="Other repositories' files, each in its own subfolder."
    )


Modality = Literal["xray", "ct", "mri", "text", "tensor"]


class Intensity(BaseModel):
    """How one modality's stored values become model input (data the preprocessing reads)."""

    model_config = ConfigDict(extra="forbid")

    unit: Literal["HU", "stored", "unit"] = Field(
        "stored", description="HU (CT), the file's stored values, or [0, 1]."
    )
    normalise: Literal["window", "minmax", "bits", "none"] = Field(
        "none", description="window: clip to `window` then scale; minmax; bits: by bit depth."
    )
    window: tuple[float, float] | None = Field(None, description="Clip range, e.g. [-1000, 1000].")


class InputContract(BaseModel):
    """What the model accepts, checked before any work reaches a device."""

    model_config = ConfigDict(extra="forbid")

    modalities: list[Modality] = Field(default_factory=list)
    dims: Literal[0, 2, 3] = Field(0, description="0: not an image (text, tensors); 2 or 3.")
    channels: list[int] | None = Field(None, description="Channel counts accepted as input.")
    intensity: dict[str, Intensity] = Field(
        default_factory=dict, description="Per modality: unit and normalisation."
    )
    value_range: tuple[float, float] | None = Field(
        None, description="Range of the model-unit values (after normalisation)."
    )
    spacing_mm: tuple[float, ...] | None = None
    min_side: int | None = Field(None, description="Smallest spatial side accepted (pixels).")
    max_pixels: int | None = Field(None, description="Largest spatial size (pixels or voxels).")
    max_file_mb: float | None = Field(None, description="Largest input file.")
    max_items: int | None = Field(None, description="Most items (images, texts) per request.")
    max_text_chars: int | None = Field(None, description="Longest text input.")
    notes: str | None = None


class Batching(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = 8
    max_queue_delay_ms: float = 5.0
    max_queue_size: int = 256
    timeout_s: float | None = None


class Resources(BaseModel):
    """What the model needs to run; `medserve serve` places workers from it (docs/scaling.md)."""

    model_config = ConfigDict(extra="forbid")

    min_gpu_memory_gb: float = 0.0
    cpu_ok: bool = True
    replicas: int | None = Field(
        None, ge=1, description="Workers to serve it on one machine: unset = one on every GPU it "
        "fits on (one worker without GPUs); N = at most N.",
    )  # fmt: skip


class Manifest(BaseModel):
    """One served model."""

    model_config = ConfigDict(extra="forbid")

    name: str
    family: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: str
    description: str = ""
    source: Source | None = None
    license: str = "unknown"
    intended_use: str = ""
    input: InputContract = Field(default_factory=InputContract)
    defaults: dict[str, Any] = Field(default_factory=dict)
    adapter: dict[str, Any] = Field(default_factory=dict, description="Adapter options.")
    tiny: dict[str, Any] = Field(default_factory=dict, description="Tiny-builder options.")
    batching: Batching = Field(default_factory=Batching)
    resources: Resources = Field(default_factory=Resources)

    @classmethod
    def from_yaml(cls, path: Path) -> Manifest:
        with path.open() as handle:
            return cls.model_validate(yaml.safe_load(handle))


def load_manifests(directory: Path = MANIFEST_DIR) -> dict[str, Manifest]:
    manifests = {}
    for path in sorted(directory.glob("*.yaml")):
        manifest = Manifest.from_yaml(path)
        manifests[manifest.name] = manifest
    return manifests
