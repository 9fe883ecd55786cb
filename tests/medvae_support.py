"""MedVAE test helpers: a store with tiny models, synthetic input files, adapter calls."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

import numpy as np

from model_store.manifest import load_manifests
from model_store.store import ModelStore, ResolvedModel
from workers.runtime.oip import InferRequest, InferResponse
from workers.runtime.registry import build_tiny

VARIANTS_2D = ["medvae-4-1-2d", "medvae-4-3-2d", "medvae-8-1-2d", "medvae-8-4-2d"]
VARIANTS_3D = ["medvae-4-1-3d", "medvae-8-1-3d"]
ALL = VARIANTS_2D + VARIANTS_3D


def store_at(root: Path) -> ModelStore:
    return ModelStore(root, load_manifests())


def tiny(root: Path, name: str) -> ResolvedModel:
    return build_tiny(store_at(root), name, seed=0)


def load_adapter(resolved: ResolvedModel) -> Any:
    from workers.medvae.adapter import MedVAEAdapter

    adapter = MedVAEAdapter(resolved.manifest)
    adapter.load(resolved, "cpu")
    return adapter


def run(adapter: Any, inputs: dict[str, Any], **params: Any) -> InferResponse:
    """preprocess -> predict (one batch) -> postprocess, as the worker does."""
    prepared = {}
    for key, value in inputs.items():
        if isinstance(value, bytes):
            value = np.array([value], dtype=np.object_)
        prepared[key] = value
    request = InferRequest(inputs=prepared, parameters=params)
    items = adapter.preprocess(request)
    results = adapter.predict(items)
    return adapter.postprocess(request, results)


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def gray_image(size: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    base = 120 + 80 * np.sin(xx / 7.0) * np.cos(yy / 5.0)
    return np.clip(base + rng.normal(0, 10, (size, size)), 0, 255).astype(np.uint8)


def rgb_image(size: int = 64, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def nifti_bytes(volume: np.ndarray, affine: np.ndarray | None = None, gz: bool = True) -> bytes:
    import nibabel as nib

    image = nib.Nifti1Image(volume, np.eye(4) if affine is None else affine)
    raw = image.to_bytes()
    return gzip.compress(raw) if gz else raw


def ct_volume(shape: tuple[int, int, int] = (64, 64, 32), seed: int = 2) -> np.ndarray:
    """HU values with foreground (HU > 0) touching every face, so the crop keeps all of it."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1200, 1500, shape).astype(np.float32)


def mri_volume(shape: tuple[int, int, int] = (40, 52, 36), seed: int = 3) -> np.ndarray:
    """A bright blob inside a dim background: the released crop cuts it to the blob."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    blob = np.exp(-4 * (grid**2).sum(0))
    return (400 * blob + rng.uniform(0, 30, shape)).astype(np.float32)


LPS_AFFINE = np.array(
    [[-1.5, 0, 0, 40.0], [0, -1.2, 0, 30.0], [0, 0, 2.0, -10.0], [0, 0, 0, 1]], dtype=np.float64
)


def dicom_bytes(array: np.ndarray, modality: str = "DX") -> bytes:
    """A single-frame 8-bit grayscale DICOM with the given Modality tag."""
    import io

    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality = modality
    pixels = np.ascontiguousarray(array, dtype=np.uint8)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
