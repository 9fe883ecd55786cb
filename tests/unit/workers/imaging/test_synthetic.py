"""Synthetic labelling of generated images: PNG text chunks and DICOM Secondary Capture."""

from __future__ import annotations

import io
import json

import numpy as np
import pydicom
import pytest
from PIL import Image

from core.errors import InvalidInput
from workers.imaging import synthetic

PROVENANCE = {
    "model": "roentgen-v2",
    "version": "2.0",
    "weights": "random-tiny",
    "weights_digest": "sha256:abc",
    "seed": 12,
    "prompt": "50 year old female. Normal.",
    "steps": 4,
    "scheduler": "pndm",
    "synthetic": True,
}


def _gray() -> np.ndarray:
    return (np.arange(48 * 64) % 251).astype(np.uint8).reshape(48, 64)


def test_png_carries_label_provenance_and_exact_pixels() -> None:
    data = synthetic.encode(_gray(), "png", PROVENANCE)
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "L" and image.size == (64, 48)
        assert np.array_equal(np.asarray(image), _gray())
        assert image.text["synthetic"] == "true"
        assert "SYNTHETIC IMAGE" in image.text["Description"]
        assert json.loads(image.text["provenance"]) == PROVENANCE
    label = synthetic.read_png_label(data)
    assert label["synthetic"] and label["provenance"]["seed"] == 12


def test_dicom_is_a_labelled_secondary_capture_without_identifiers() -> None:
    first = pydicom.dcmread(io.BytesIO(synthetic.encode(_gray(), "dicom", PROVENANCE)))
    second = pydicom.dcmread(io.BytesIO(synthetic.encode(_gray(), "dicom", PROVENANCE)))
    assert first.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert first.file_meta.MediaStorageSOPClassUID == first.SOPClassUID
    assert list(first.ImageType) == ["DERIVED", "SECONDARY"]
    assert first.ConversionType == "SYN"
    assert first.BurnedInAnnotation == "NO"
    assert "SYNTHETIC IMAGE" in first.ImageComments
    assert '"seed": 12' in first.ImageComments
    assert json.loads(first[0x0011, 0x1001].value) == PROVENANCE
    assert str(first.PatientName) == "SYNTHETIC" and first.PatientID == "SYNTHETIC"
    assert not first.PatientBirthDate and not first.PatientSex
    assert first.PhotometricInterpretation == "MONOCHROME2"
    assert np.array_equal(first.pixel_array, _gray())
    for uid in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        assert getattr(first, uid) != getattr(second, uid)


def test_rgb_dicom_and_npy_round_trip() -> None:
    rgb = np.stack([_gray(), 255 - _gray(), _gray() // 2], axis=-1)
    ds = pydicom.dcmread(io.BytesIO(synthetic.encode(rgb, "dicom", PROVENANCE)))
    assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
    assert np.array_equal(ds.pixel_array, rgb)
    assert np.array_equal(np.load(io.BytesIO(synthetic.encode(rgb, "npy", PROVENANCE))), rgb)


def test_writers_refuse_what_they_cannot_label() -> None:
    with pytest.raises(InvalidInput):
        synthetic.encode(_gray().astype(np.float32), "png", PROVENANCE)
    with pytest.raises(InvalidInput):
        synthetic.encode(_gray(), "jpeg", PROVENANCE)
