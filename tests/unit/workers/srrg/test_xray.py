"""X-ray bytes -> the 8-bit RGB image the released processor sees; every bad input refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.errors import InvalidInput, PayloadTooLarge
from tests.srrg_support import dicom, gradient, png
from workers.imaging.writers import to_nifti, to_npy
from workers.srrg.xray import MIN_SIDE, decode_xray


def test_8bit_grey_png_is_what_pil_convert_gives() -> None:
    data = png(gradient())
    image = decode_xray(data)
    assert image.mode == "RGB" and image.size == (96, 80)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(np.asarray(image), expected)


def test_rgb_and_rgba_pass_through_without_alpha() -> None:
    rgb = np.stack([gradient(), 255 - gradient(), np.full((80, 96), 7, np.uint8)], axis=-1)
    assert np.array_equal(np.asarray(decode_xray(png(rgb))), rgb)
    rgba = np.concatenate([rgb, np.full((80, 96, 1), 128, np.uint8)], axis=-1)
    assert np.array_equal(np.asarray(decode_xray(png(rgba))), rgb)


def test_jpeg_decodes() -> None:
    buffer = io.BytesIO()
    Image.fromarray(gradient()).save(buffer, "JPEG", quality=95)
    image = decode_xray(buffer.getvalue())
    assert image.mode == "RGB" and image.size == (96, 80)


def test_16bit_png_is_scaled_min_max() -> None:
    values = (np.add.outer(np.arange(80), np.arange(96)) * 300 + 1000).astype(np.uint16)
    out = np.asarray(decode_xray(png(values)))
    assert out[..., 0].min() == 0 and out[..., 0].max() == 255
    expected = np.rint((values - 1000.0) * 255.0 / (values.max() - 1000.0)).astype(np.uint8)
    assert np.array_equal(out[..., 0], expected)
    assert np.array_equal(out[..., 0], out[..., 2])


def test_dicom_modality_lut_and_monochrome1() -> None:
    raw = (np.arange(80 * 96).reshape(80, 96) % 256 * 10).astype(np.uint16)  # 0..2550
    plain = np.asarray(decode_xray(dicom(raw)))[..., 0]
    rescaled = np.asarray(decode_xray(dicom(raw, slope=2.0, intercept=-1024.0)))[..., 0]
    assert np.array_equal(plain, rescaled)  # a linear LUT does not change min-max scaling
    inverted = np.asarray(decode_xray(dicom(raw, photometric="MONOCHROME1")))[..., 0]
    assert np.array_equal(inverted, 255 - plain)
    assert plain[0, 0] == 0 and inverted[0, 0] == 255  # bright means dense after inversion


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"this is not an image at all, just some text bytes" * 4, "not an image"),
        (png(np.zeros((1, 1), np.uint8)), f"at least {MIN_SIDE} pixels"),
        (png(np.zeros((MIN_SIDE - 1, 200), np.uint8)), f"at least {MIN_SIDE} pixels"),
        (to_nifti(np.zeros((70, 70, 40), np.float32), np.eye(4), {}), "not a volume"),
        (to_npy(np.zeros((3, 70, 70), np.float32)), "not a volume"),
        (
            png(np.random.default_rng(0).integers(0, 255, (80, 96), dtype=np.uint8))[:3000],
            "truncated",
        ),
        (png(np.full((80, 80), 9, np.uint16)), "constant"),
    ],
)
def test_bad_inputs_are_refused(data: bytes, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        decode_xray(data)


def test_multiframe_dicom_is_refused() -> None:
    frames = np.zeros((3, 80, 80), np.uint16)
    with pytest.raises(InvalidInput, match="3 frames"):
        decode_xray(dicom(frames, frames=3))


def test_pixel_limit() -> None:
    with pytest.raises(PayloadTooLarge, match="smaller image"):
        decode_xray(png(gradient(200, 200)), max_pixels=10_000)
