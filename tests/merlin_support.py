"""Merlin test helpers: tiny stores, synthetic CT volumes as NIfTI and as zipped DICOM series."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from model_store.manifest import Manifest

STORE_NAMES = {"clip": "merlin", "five_year": "merlin-five-year", "report": "merlin-report"}


def build_store(root: Path, kind: str, seed: int = 0, **options: Any) -> Path:
    """A tiny model of `kind` written by the family builder into `root/<store name>`."""
    from workers.merlin import tiny

    target = root / STORE_NAMES[kind]
    if not target.exists():
        manifest = Manifest(
            name=STORE_NAMES[kind], family="merlin", version="1", tiny={"model": kind, **options}
        )
        tiny.build(manifest, target, seed=seed)
    return target


def ct_phantom(shape: tuple[int, int, int] = (60, 50, 24), seed: int = 0) -> np.ndarray:
    """int16 HU: air around an elliptic body with a bright off-centre 'spine' (not symmetric)."""
    rng = np.random.default_rng(seed)
    i, j, k = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    volume = np.full(shape, -1000.0)
    volume[(i / 0.8) ** 2 + (j / 0.6) ** 2 < 1] = 40.0
    volume[((i - 0.3) ** 2 + (j + 0.3) ** 2 < 0.02) & (k > -0.5)] = 700.0
    volume += rng.normal(0, 15, shape)
    return volume.astype(np.int16)


def oblique_affine(spacing: tuple[float, float, float] = (0.8, 0.9, 2.5)) -> np.ndarray:
    """LPS-stored axes (x, y flipped), rotated 12 deg about z and 7 deg about x, anisotropic."""
    a, b = np.deg2rad(12), np.deg2rad(7)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ rx @ np.diag([-spacing[0], -spacing[1], spacing[2]])
    affine[:3, 3] = [20.0, -15.0, 40.0]
    return affine


def nifti_bytes(volume: np.ndarray, affine: np.ndarray, gz: bool = True) -> bytes:
    import nibabel as nib

    raw = nib.Nifti1Image(volume, affine).to_bytes()
    return gzip.compress(raw, compresslevel=1) if gz else raw


def dicom_series(
    volume: np.ndarray,
    spacing: tuple[float, float, float] = (0.8, 0.9, 2.5),
    *,
    modality: str = "CT",
    series_uid: str = "1.2.826.0.1.3680043.8.498.1",
    slices: list[int] | None = None,
) -> list[bytes]:
    """One file per slice k of `volume[i,j,k]` (column i, row j), axial LPS orientation."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    files = []
    for number, k in enumerate(range(volume.shape[2]) if slices is None else slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = f"{series_uid}.{number + 1}"
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.7", series_uid
        ds.Modality, ds.PatientID, ds.InstanceNumber = modality, "PHANTOM", number + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-100.0, -80.0, 30.0 + k * spacing[2]]
        ds.PixelSpacing = [spacing[1], spacing[0]]  # row spacing (j), column spacing (i)
        ds.SliceThickness = spacing[2]
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = (volume[:, :, k].T.astype(np.int32) + 1024).astype("<i2").tobytes()
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        files.append(buffer.getvalue())
    return files


def dicom_affine(spacing: tuple[float, float, float] = (0.8, 0.9, 2.5)) -> np.ndarray:
    """The RAS affine of `dicom_series` (LPS axes, origin (-100, -80, 30) flipped to RAS)."""
    return np.array(
        [
            [-spacing[0], 0, 0, 100.0],
            [0, -spacing[1], 0, 80.0],
            [0, 0, spacing[2], 30.0],
            [0, 0, 0, 1],
        ]
    )


def zip_bytes(files: list[bytes], order: list[int] | None = None) -> bytes:
    """Files zipped under shuffled names (the reader must order slices by position)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, index in enumerate(order or list(range(len(files)))[::-1]):
            archive.writestr(f"series/IM{name:04d}", files[index])
    return buffer.getvalue()
