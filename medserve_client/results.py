"""Typed results of the `/v1` routes: files as bytes with lazy readers, reports as objects.

Every result keeps the gateway's JSON in `raw`. Files keep their bytes (`data`) and read into
numpy or Pillow only when asked (`to_numpy()`, `to_pil()`), so the client needs neither.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medserve_client import media


def _b64(raw: dict[str, Any]) -> bytes:
    return base64.b64decode(raw.get("data_base64") or "")


@dataclass(frozen=True)
class Provenance:
    """Which model, version and weights produced a result."""

    model: str
    version: str | None
    weights: str | None
    weights_digest: str | None

    @staticmethod
    def of(raw: dict[str, Any]) -> dict[str, Any]:
        return {k: raw.get(k) for k in ("model", "version", "weights", "weights_digest")}


@dataclass(frozen=True)
class File:
    """A file the gateway made: its bytes, media type, and readers."""

    data: bytes = field(repr=False)
    media_type: str

    def save(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.data)
        return target

    def to_numpy(self) -> Any:
        """The file as a numpy array (PNG, JPEG, DICOM, .npy, safetensors, NIfTI voxels)."""
        return media.to_array(self.data, self.media_type)

    def to_pil(self) -> Any:
        """A PNG or JPEG as a PIL image (needs Pillow)."""
        return media.to_pil(self.data)

    @property
    def extension(self) -> str:
        kind = media.sniff(self.data)
        return {"nifti": ".nii.gz", "dicom": ".dcm", "jpeg": ".jpg"}.get(kind or "", f".{kind}")


@dataclass(frozen=True)
class Volume:
    """A 3D array in RAS voxel order with its 4x4 voxel-to-RAS (mm) affine."""

    array: Any
    affine: Any


@dataclass(frozen=True)
class GeneratedImage(File):
    index: int = 0
    seed: int = 0


@dataclass(frozen=True)
class Generation(Provenance):
    """`roentgen_generate`: synthetic images, the prompt used, and what made them."""

    synthetic: bool
    prompt: str
    images: list[GeneratedImage]
    provenance: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Generation:
        images = [
            GeneratedImage(
                data=_b64(i), media_type=i["media_type"], index=i["index"], seed=i["seed"]
            )
            for i in raw["images"]
        ]
        return cls(**Provenance.of(raw), synthetic=bool(raw.get("synthetic", True)),
                   prompt=raw["prompt"], images=images, provenance=raw.get("provenance") or {},
                   raw=raw)  # fmt: skip

    def save(self, folder: str | Path, stem: str = "cxr") -> list[Path]:
        """Write every image as `<stem>-<index>-seed<seed><ext>` into `folder`."""
        return [
            image.save(Path(folder) / f"{stem}-{image.index}-seed{image.seed}{image.extension}")
            for image in self.images
        ]


@dataclass(frozen=True)
class Latent(File, Provenance):
    """`medvae_encode`: the latent file (npy, safetensors or NIfTI) and its facts."""

    latent: str = "s1"
    shape: list[int] = field(default_factory=list)
    format: str = "npy"
    factor: int | None = None
    modality: str | None = None
    sample: bool = False
    seed: int | None = None
    input_shape: list[int] = field(default_factory=list)
    affine: list[list[float]] | None = None
    value_range: list[float] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Latent:
        keys = ("latent", "shape", "format", "factor", "modality", "sample", "seed",
                "input_shape", "affine", "value_range")  # fmt: skip
        fields = {k: raw[k] for k in keys if raw.get(k) is not None}
        return cls(data=_b64(raw), media_type=raw["media_type"], **Provenance.of(raw), **fields,
                   raw=raw)  # fmt: skip

    def volume(self) -> Volume:
        """A 3D latent as channels-first voxels [C,x,y,z] with its affine (needs numpy)."""
        np = media.need("numpy")
        array = self.to_numpy()
        if self.format == "nifti" and array.ndim == 3:
            array = array[None]
        return Volume(array, np.asarray(self.affine, dtype=float) if self.affine else None)


@dataclass(frozen=True)
class Reconstruction(File, Provenance):
    """`medvae_decode`: the decoded image (PNG, NIfTI or npy), labelled a reconstruction."""

    shape: list[int] = field(default_factory=list)
    format: str = "png"
    modality: str | None = None
    value_unit: str = "unit"
    synthetic: bool = True
    affine: list[list[float]] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Reconstruction:
        keys = ("shape", "format", "modality", "value_unit", "synthetic", "affine")
        fields = {k: raw[k] for k in keys if raw.get(k) is not None}
        return cls(data=_b64(raw), media_type=raw["media_type"], **Provenance.of(raw), **fields,
                   raw=raw)  # fmt: skip

    def volume(self) -> Volume:
        """A 3D reconstruction as voxels [X,Y,Z] (HU for CT) with its affine (needs numpy)."""
        if self.format == "nifti":
            return Volume(*media.read_nifti(self.data))
        np = media.need("numpy")
        return Volume(self.to_numpy(), np.asarray(self.affine) if self.affine else None)


@dataclass(frozen=True)
class ErrorFound:
    category: str | None
    text: str


@dataclass(frozen=True)
class Evaluation:
    """A MedVAL grade: risk 1-4, the errors found and the reasoning (machine-generated)."""

    risk_level: int | None
    risk_label: str | None
    errors: list[ErrorFound]
    reasoning: str
    task: str | None
    constrained: bool
    error: str | None = None

    @classmethod
    def item(cls, raw: dict[str, Any]) -> dict[str, Any]:
        errors = [ErrorFound(e.get("category"), e.get("text", "")) for e in raw.get("errors", [])]
        return dict(risk_level=raw.get("risk_level"), risk_label=raw.get("risk_label"),
                    errors=errors, reasoning=raw.get("reasoning", ""), task=raw.get("task"),
                    constrained=bool(raw.get("constrained")), error=raw.get("error"))  # fmt: skip


@dataclass(frozen=True)
class EngineProvenance(Provenance):
    machine_generated: bool
    engine: str
    served_model: str

    @staticmethod
    def of(raw: dict[str, Any]) -> dict[str, Any]:
        return {
            **Provenance.of(raw),
            "machine_generated": bool(raw.get("machine_generated", True)),
            "engine": raw.get("engine", ""),
            "served_model": raw.get("served_model", ""),
        }


@dataclass(frozen=True)
class Grade(Evaluation, EngineProvenance):
    """`medval_evaluate` with one item."""

    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Grade:
        return cls(**Evaluation.item(raw), **EngineProvenance.of(raw), raw=raw)


@dataclass(frozen=True)
class Grades(EngineProvenance):
    """`medval_evaluate` with `items`: one `Evaluation` per item, in order."""

    results: list[Evaluation]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Grades:
        results = [Evaluation(**Evaluation.item(r)) for r in raw["results"]]
        return cls(**EngineProvenance.of(raw), results=results, raw=raw)
