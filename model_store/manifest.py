"""Model manifest schema: one YAML file per served model in `model_store/manifests/`.

Data, never code: where the weights come from (Hugging Face repo, pinned revision, files and
their sha256), what input the model accepts, how it is batched and what it needs to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

MANIFEST_DIR = Path(__file__).parent / "manifests"

Family = Literal["builtin", "roentgen", "medvae", "merlin", "srrg", "medval"]


class SourceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Path inside the repository.")
    sha256: str | None = Field(None, description="Expected digest; verified after download.")
    size: int | None = None


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo_id: str
    revision: str = Field(description="A commit sha or tag; never a moving branch in production.")
    allow_patterns: list[str] = Field(default_factory=list)
    files: list[SourceFile] = Field(default_factory=list)
    gated: bool = False


class InputContract(BaseModel):
    """What the model accepts, checked before any work reaches a device."""

    model_config = ConfigDict(extra="forbid")

    modalities: list[str] = Field(default_factory=list)
    dims: Literal[0, 2, 3] = 0
    channels: int | None = None
    value_range: tuple[float, float] | None = None
    spacing_mm: tuple[float, ...] | None = None
    max_pixels: int | None = None
    notes: str | None = None


class Batching(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = 8
    max_queue_delay_ms: float = 5.0
    max_queue_size: int = 256
    timeout_s: float | None = None


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_gpu_memory_gb: float = 0.0
    cpu_ok: bool = True


class Manifest(BaseModel):
    """One served model."""

    model_config = ConfigDict(extra="forbid")

    name: str
    family: Family
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
