"""Decode medical image files from bytes (PNG/JPEG, single-frame DICOM, NIfTI-1/2, .npy) with
the checks a server needs: sizes declared in headers are checked before anything is allocated,
truncated and non-finite data are refused, and every failure is an `InvalidInput` that says what to
send instead. numpy, Pillow, pydicom and nibabel only (no torch): usable by any process.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import InvalidInput, PayloadTooLarge

GZIP_MAGIC = b"\x1f\x8b"
NIFTI1_HEADER = 348
NIFTI2_HEADER = 540


@dataclass
class Decoded:
    """Pixel data as float32 (2D: [C,H,W]; 3D: [D0,D1,D2] in file voxel order) plus metadata."""

    array: np.ndarray
    kind: str
    dims: int
    affine: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


def sniff(data: bytes) -> str | None:
    """File kind from magic bytes: png, jpeg, dicom, nifti, npy, safetensors, or None."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(GZIP_MAGIC):
        return "nifti"  # the only gzip container accepted
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    if len(data) >= NIFTI1_HEADER and data[344:348] in (b"n+1\x00", b"ni1\x00"):
        return "nifti"
    if len(data) >= NIFTI2_HEADER and data[4:8] in (b"n+2\x00", b"ni2\x00"):
        return "nifti"
    if len(data) >= 8:
        size = int.from_bytes(data[:8], "little")
        if 0 < size < len(data) and data[8:9] == b"{":
            return "safetensors"
    return None


def check_finite(array: np.ndarray, what: str) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InvalidInput(f"the {what} contains NaN or infinite values; send finite intensities")


def _check_pixels(count: int, limit: int, what: str) -> None:
    if count <= 0:
        raise InvalidInput(f"the {what} is empty (a zero-sized dimension)")
    if count > limit:
        raise PayloadTooLarge(
            f"the {what} declares {count} pixels, more than the {limit} this model accepts; "
            "send a smaller image"
        )


# ---- 2D: PNG / JPEG ------------------------------------------------------------------------


def read_raster(data: bytes, max_pixels: int) -> Decoded:
    """PNG or JPEG to [C,H,W] float32 in stored units (8-bit 0..255, 16-bit 0..65535).

    Palette images become RGB, alpha channels are dropped."""
    from PIL import Image

    if data[12:16] == b"IHDR":  # PNG: the declared size, read before Pillow sees the file
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        _check_pixels(width * height, max_pixels, "image")
    try:
        image = Image.open(io.BytesIO(data))  # parses the header only
    except Image.DecompressionBombError:
        raise InvalidInput(
            f"the image declares more than {max_pixels} pixels; send a smaller image"
        ) from None
    except Exception:
        raise InvalidInput("the file is not a readable PNG or JPEG image") from None
    width, height = image.size
    _check_pixels(width * height, max_pixels, "image")
    try:
        image.load()
    except Exception:
        raise InvalidInput(
            "the image data is truncated or corrupt; send the complete file"
        ) from None
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
    elif mode == "1":
        image = image.convert("L")
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[None]
    else:
        array = np.moveaxis(array, -1, 0)
        if array.shape[0] in (2, 4):  # LA / RGBA: drop alpha
            array = array[:-1]
    return Decoded(
        array.astype(np.float32),
        kind=image.format.lower() if image.format else "png",
        dims=2,
        info={"mode": mode, "height": height, "width": width},
    )


# ---- 2D: DICOM ---------------------------------------------------------------------------


def read_dicom(data: bytes, max_pixels: int) -> Decoded:
    """One single-frame DICOM image to [C,H,W] float32 after the modality LUT (rescale slope and
    intercept); MONOCHROME1 is inverted so that bright means dense, as in MONOCHROME2."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=False)
    except Exception:
        raise InvalidInput("the file is not a readable DICOM Part 10 file") from None
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if "PixelData" not in ds:
        raise InvalidInput("the DICOM file has no pixel data")
    if frames != 1:
        raise InvalidInput(
            f"the DICOM file has {frames} frames; send one single-frame image "
            "(or a volume as NIfTI to a 3D model)"
        )
    _check_pixels(rows * cols * max(samples, 1), max_pixels * 3, "DICOM image")
    try:
        pixels = ds.pixel_array
    except Exception:
        raise InvalidInput(
            "the DICOM pixel data cannot be decoded here (truncated, or a compressed transfer "
            "syntax without a decoder); send uncompressed DICOM or PNG"
        ) from None
    if samples == 1:
        array = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float32)
        if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
            array = array.max() + array.min() - array
        array = array[None]
    else:
        array = np.moveaxis(np.asarray(pixels, dtype=np.float32), -1, 0)
    check_finite(array, "DICOM image")
    return Decoded(
        array,
        kind="dicom",
        dims=2,
        info={"modality": str(ds.get("Modality", "")), "height": rows, "width": cols},
    )


# ---- 3D: NIfTI ---------------------------------------------------------------------------


def _inflate(data: bytes, limit: int) -> bytes:
    """gunzip at most `limit` bytes (a declared size is checked before this is called)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        return inflater.decompress(data, limit)
    except zlib.error:
        raise InvalidInput(
            "the .nii.gz file is not valid gzip data (truncated or corrupt)"
        ) from None


def _nifti_header(raw: bytes) -> Any:
    import nibabel as nib

    if len(raw) < NIFTI1_HEADER:
        raise InvalidInput("the NIfTI file is shorter than its header (truncated)")
    two = NIFTI2_HEADER in (int.from_bytes(raw[:4], "little"), int.from_bytes(raw[:4], "big"))
    klass, size = (nib.Nifti2Header, NIFTI2_HEADER) if two else (nib.Nifti1Header, NIFTI1_HEADER)
    try:  # the fixed-size header alone: extensions are read with the image
        return klass.from_fileobj(io.BytesIO(raw[:size]), check=True)
    except Exception:
        raise InvalidInput("the NIfTI header is invalid; send a NIfTI-1 or NIfTI-2 file") from None


def read_nifti(data: bytes, max_voxels: int) -> Decoded:
    """NIfTI-1/2 (.nii or .nii.gz) to float32 with the scaling applied and its affine.

    The declared shape is checked against `max_voxels` before the data is inflated or read."""
    import nibabel as nib

    gz = data.startswith(GZIP_MAGIC)
    head = _inflate(data, NIFTI2_HEADER) if gz else data[:NIFTI2_HEADER]
    header = _nifti_header(head)
    shape = tuple(int(d) for d in header.get_data_shape())
    spatial = shape[:3] + (1,) * (3 - len(shape[:3]))
    extra = int(np.prod(shape[3:], dtype=np.int64)) if len(shape) > 3 else 1
    if extra != 1:
        raise InvalidInput(
            f"the NIfTI image has shape {list(shape)}: send one 3D volume, not a series"
        )
    count = int(np.prod(spatial, dtype=np.int64))
    _check_pixels(count, max_voxels, "volume")
    offset = int(header.get_data_offset())
    needed = offset + count * header.get_data_dtype().itemsize
    raw = _inflate(data, needed + 1) if gz else data
    if len(raw) < needed:
        raise InvalidInput(
            f"the NIfTI file is truncated: its header declares {needed} bytes, the file has "
            f"{len(raw)}; send the complete file"
        )
    try:
        image = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
        img = image.from_bytes(raw[:needed])
        array = np.asarray(img.dataobj, dtype=np.float32).reshape(spatial)
        affine = np.asarray(img.affine, dtype=np.float64)
    except InvalidInput:
        raise
    except Exception:
        raise InvalidInput("the NIfTI data cannot be read (corrupt file)") from None
    check_finite(array, "volume")
    zooms = [float(z) for z in header.get_zooms()[:3]]
    comments = [e.get_content() for e in img.header.extensions if e.get_code() == 6]
    info: dict[str, Any] = {"shape": list(spatial), "spacing": zooms}
    if comments:
        info["comment"] = comments[-1].decode("utf-8", "replace")
    return Decoded(array, kind="nifti", dims=3 if spatial[2] > 1 else 2, affine=affine, info=info)


# ---- arrays ------------------------------------------------------------------------------


def read_npy(data: bytes, max_values: int) -> np.ndarray:
    """A .npy array (no pickled objects), its declared size checked before reading."""
    from numpy.lib import format as npformat

    handle = io.BytesIO(data)
    try:
        version = npformat.read_magic(handle)
        read_header = (
            npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
        )
        shape, _, dtype = read_header(handle)  # the header only
    except Exception:
        raise InvalidInput("the .npy data has an invalid header") from None
    if dtype.hasobject:
        raise InvalidInput("the .npy array holds Python objects; send a numeric array")
    _check_pixels(int(np.prod(shape, dtype=np.int64)), max_values, "array")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception:
        raise InvalidInput("the .npy data is truncated or corrupt") from None


def read_any(data: bytes, max_pixels: int) -> Decoded:
    """Decode an image file of any supported kind (see `sniff`)."""
    kind = sniff(data)
    if kind in ("png", "jpeg"):
        return read_raster(data, max_pixels)
    if kind == "dicom":
        return read_dicom(data, max_pixels)
    if kind == "nifti":
        return read_nifti(data, max_pixels)
    if kind == "npy":
        array = read_npy(data, max_pixels).astype(np.float32)
        check_finite(array, "array")
        return Decoded(array, kind="npy", dims=3 if array.ndim == 3 and array.shape[0] > 4 else 2)
    raise InvalidInput(
        "the file is not a supported image: send PNG, JPEG, single-frame DICOM (Part 10) or "
        "NIfTI (.nii / .nii.gz)"
    )
