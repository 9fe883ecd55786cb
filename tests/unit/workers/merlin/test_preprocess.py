"""Merlin CT preprocessing: the released transform's shape and intensities, NIfTI and DICOM
inputs giving the same tensor, and every refusal with the error the caller gets."""

from __future__ import annotations

import gzip
import io
import zipfile

import numpy as np
import pytest

from core.errors import InvalidInput, PayloadTooLarge
from tests.merlin_support import (
    ct_phantom,
    dicom_affine,
    dicom_series,
    nifti_bytes,
    oblique_affine,
    zip_bytes,
)
from workers.merlin.preprocess import prepare

LIMIT = 1 << 22


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    return ct_phantom()


def test_nifti_gives_the_released_input(volume: np.ndarray) -> None:
    out = prepare(nifti_bytes(volume, oblique_affine()), LIMIT)
    assert tuple(out.tensor.shape) == (1, 224, 224, 160)
    assert out.tensor.dtype.is_floating_point and out.tensor.dtype.itemsize == 4
    assert float(out.tensor.min()) == 0.0 and 0.8 < float(out.tensor.max()) <= 0.86  # 700 HU
    assert out.input_shape == volume.shape
    assert out.spacing == (0.8, 0.9, 2.5)
    assert out.orientation == "LPS"
    assert out.source == "nifti"
    plain = prepare(nifti_bytes(volume, oblique_affine(), gz=False), LIMIT)
    assert np.array_equal(plain.tensor.numpy(), out.tensor.numpy())


def test_orientation_is_undone(volume: np.ndarray) -> None:
    """The same anatomy stored flipped (LPS) or not (RAS) gives the same model input."""
    ras = np.diag([0.8, 0.9, 2.5, 1.0])
    lps = ras.copy()
    lps[0, 0], lps[1, 1] = -0.8, -0.9
    lps[0, 3], lps[1, 3] = 0.8 * (volume.shape[0] - 1), 0.9 * (volume.shape[1] - 1)
    a = prepare(nifti_bytes(volume, ras), LIMIT)
    b = prepare(nifti_bytes(volume[::-1, ::-1].copy(), lps), LIMIT)
    assert (a.orientation, b.orientation) == ("RAS", "LPS")
    assert np.abs(a.tensor.numpy() - b.tensor.numpy()).max() < 1e-6


def test_large_volume_is_cropped_to_the_centre() -> None:
    volume = ct_phantom((160, 40, 80))  # 384 x 48 x 480 mm at 2.4/1.2/6 mm
    out = prepare(nifti_bytes(volume, np.diag([2.4, 1.2, 6.0, 1.0])), LIMIT)
    assert tuple(out.tensor.shape) == (1, 224, 224, 160)
    x = out.tensor[0].numpy()
    assert (x[:, 0, :] == 0).all() and (x[:, :, 0] > 0).any()  # y padded, z cropped


def test_dicom_series_matches_the_same_volume_as_nifti(volume: np.ndarray) -> None:
    files = dicom_series(volume)
    dicom = prepare(zip_bytes(files), LIMIT)
    nifti = prepare(nifti_bytes(volume, dicom_affine()), LIMIT)
    assert dicom.source == "dicom" and dicom.input_shape == volume.shape
    assert dicom.spacing == (0.8, 0.9, 2.5) and dicom.orientation == "LPS"
    assert np.abs(dicom.tensor.numpy() - nifti.tensor.numpy()).max() < 1e-6


def refused(data: bytes, match: str, limit: int = LIMIT, kind=InvalidInput) -> None:
    with pytest.raises(kind, match=match):
        prepare(data, limit)


def test_refuses_2d_and_4d(volume: np.ndarray) -> None:
    refused(nifti_bytes(volume[:, :, 0], np.eye(4)), "2D")
    refused(nifti_bytes(volume[:, :, :1], np.eye(4)), "2D")
    refused(nifti_bytes(np.stack([volume, volume], axis=-1), np.eye(4)), "4D")
    refused(zip_bytes(dicom_series(volume, slices=[3])), "2D")


def test_refuses_singular_affine_and_zero_spacing(volume: np.ndarray) -> None:
    import nibabel as nib

    image = nib.Nifti1Image(volume, np.diag([0.8, 0.9, 2.5, 1.0]))
    singular = np.diag([0.8, 0.9, 2.5, 1.0])
    singular[:, 2] = singular[:, 0]  # two axes pointing the same way
    image.set_sform(singular, code=1)
    image.set_qform(None, code=0)
    refused(gzip.compress(image.to_bytes()), "singular")

    image = nib.Nifti1Image(volume, np.eye(4))
    image.header["pixdim"][1:4] = [0.8, 0.0, 2.5]
    image.set_sform(None, code=0)
    image.set_qform(None, code=0)
    refused(image.to_bytes(), "spacing")


def test_refuses_other_files_and_truncation(volume: np.ndarray) -> None:
    refused(b"\x89PNG\r\n\x1a\n" + b"\0" * 400, "NIfTI")
    data = nifti_bytes(volume, np.eye(4), gz=False)
    refused(data[: len(data) // 2], "truncated")
    refused(b"PK\x03\x04" + b"\0" * 100, "zip")


def test_voxel_limit_is_payload_too_large(volume: np.ndarray) -> None:
    small = volume.size - 1
    refused(nifti_bytes(volume, np.eye(4)), "voxels", small, PayloadTooLarge)
    refused(zip_bytes(dicom_series(volume)), "voxels|bytes", small, PayloadTooLarge)


def test_refuses_two_series_and_non_ct(volume: np.ndarray) -> None:
    first = dicom_series(volume[:, :, :12])
    second = dicom_series(volume[:, :, 12:], series_uid="1.2.826.0.1.3680043.8.498.2")
    refused(zip_bytes(first + second), "2 DICOM series")
    refused(zip_bytes(dicom_series(volume, modality="MR")), "Modality is MR")


def test_refuses_missing_and_duplicated_slices(volume: np.ndarray) -> None:
    n = volume.shape[2]
    missing = [k for k in range(n) if k != n // 2]
    refused(zip_bytes(dicom_series(volume, slices=missing)), "irregular")
    duplicated = [*range(n), n // 2]
    refused(zip_bytes(dicom_series(volume, slices=duplicated)), "same position")


def test_refuses_an_empty_or_non_dicom_zip() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "not an image")
    refused(buffer.getvalue(), "no DICOM")
    buffer = io.BytesIO()
    zipfile.ZipFile(buffer, "w").close()
    refused(buffer.getvalue(), "empty|corrupt")
