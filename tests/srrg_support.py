"""X-ray files for the SRRG tests: PNG (8/16-bit, grey, RGB, RGBA), JPEG, DICOM (8/16-bit,
rescale slope/intercept, MONOCHROME1, multi-frame, any Modality) and a NIfTI volume."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Every non-remote SRRG model: the route tests and the examples share one stack of these.
REPORT_MODELS = ["srrg-findings", "srrg-impression"]
LABEL_MODELS = [
    "srr-bert-leaves",
    "srr-bert-leaves-with-statuses",
    "srr-bert-upper",
    "srr-bert-upper-with-statuses",
]
MODELS = REPORT_MODELS + LABEL_MODELS


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    (Image.fromarray(array, mode) if mode else Image.fromarray(array)).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def gradient(h: int = 80, w: int = 96) -> np.ndarray:
    return (np.add.outer(np.arange(h), np.arange(w)) % 256).astype(np.uint8)


def xray(seed: int = 0, h: int = 80, w: int = 96) -> np.ndarray:
    """A random 8-bit grey radiograph-sized-down image."""
    return np.random.default_rng(seed).integers(0, 255, (h, w), dtype=np.uint8)


def dicom(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    slope: float = 1.0,
    intercept: float = 0.0,
    frames: int = 1,
    bits: int = 16,
    modality: str = "DX",
) -> bytes:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.Modality, ds.SOPClassUID = modality, meta.MediaStorageSOPClassUID
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit, ds.PixelRepresentation = bits - 1, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if frames > 1:
        ds.NumberOfFrames = frames
    dtype = np.uint8 if bits == 8 else np.uint16
    ds.PixelData = np.ascontiguousarray(pixels.astype(dtype)).tobytes()
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def nifti_volume(shape: tuple[int, int, int] = (70, 70, 40)) -> bytes:
    from workers.imaging.writers import to_nifti

    return to_nifti(np.zeros(shape, np.float32), np.eye(4), {})
