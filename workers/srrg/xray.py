"""Chest X-ray bytes -> the 8-bit RGB PIL image the released SRRG image processor is given.

The published recipe opens a JPEG/PNG with PIL and hands it to `ViTImageProcessor`, i.e. 8-bit
values 0..255 in three channels. 8-bit PNG/JPEG pass through unchanged (grey replicated to RGB,
alpha dropped: what `Image.convert("RGB")` gives). Data with more than 8 bits (16-bit PNG, DICOM
after the modality LUT, MONOCHROME1 already inverted by the reader) is scaled min..max to 0..255.
Anything that is not one 2D image is refused with `InvalidInput`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.errors import InvalidInput
from workers.imaging.readers import read_any, sniff

MIN_SIDE = 64  # px; the processor resizes to 224 (or 384): smaller inputs carry no usable detail
DEFAULT_MAX_PIXELS = 4096 * 4096
EIGHT_BIT_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"}


def _to_uint8(array: np.ndarray, eight_bit: bool) -> np.ndarray:
    """[C,H,W] float32 -> [H,W,3] uint8."""
    if eight_bit:
        scaled = array
    else:
        low, high = float(array.min()), float(array.max())
        if high <= low:
            raise InvalidInput("the image is constant (one grey value); send a real radiograph")
        scaled = (array - low) * (255.0 / (high - low))
    pixels = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    if pixels.shape[0] == 1:
        pixels = np.repeat(pixels, 3, axis=0)
    return np.ascontiguousarray(np.moveaxis(pixels[:3], 0, -1))


def read_xray(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Image.Image, str]:
    """One chest X-ray (PNG, JPEG or single-frame DICOM) as an RGB 8-bit PIL image, and the
    DICOM Modality tag ("" for PNG/JPEG), so a caller can refuse a CT slice."""
    if not data:
        raise InvalidInput("the image is empty; send a PNG, JPEG or single-frame DICOM file")
    kind = sniff(data)
    if kind in ("nifti", "npy", "safetensors"):
        raise InvalidInput(
            f"got a {kind} file: SRRG reads one 2D chest radiograph; send PNG, JPEG or "
            "single-frame DICOM, not a volume or a tensor"
        )
    if kind not in ("png", "jpeg", "dicom"):
        raise InvalidInput(
            "the file is not an image this model reads: send PNG, JPEG or single-frame DICOM"
        )
    decoded = read_any(data, max_pixels)
    if decoded.dims != 2 or decoded.array.ndim != 3 or decoded.array.shape[0] not in (1, 3):
        raise InvalidInput("the file holds more than one 2D image; send a single radiograph")
    height, width = decoded.array.shape[1:]
    if min(height, width) < MIN_SIDE:
        raise InvalidInput(
            f"the image is {width}x{height} pixels; send at least {MIN_SIDE} pixels on each side"
        )
    eight_bit = kind != "dicom" and decoded.info.get("mode") in EIGHT_BIT_MODES
    modality = str(decoded.info.get("modality", "")) if kind == "dicom" else ""
    return Image.fromarray(_to_uint8(decoded.array, eight_bit)), modality


def decode_xray(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """One chest X-ray (PNG, JPEG or single-frame DICOM) as an RGB 8-bit PIL image."""
    return read_xray(data, max_pixels=max_pixels)[0]
