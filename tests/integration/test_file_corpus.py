"""Broken and degenerate files to every file-taking route: each gets a 4xx that says what to fix,
never a 5xx, and the workers keep serving.

The corpus: empty, garbage, truncated PNG/JPEG/DICOM/NIfTI, images of 1x1 to 1x4096 pixels
(8- and 16-bit), sizes declared far past the limit (PNG and NIfTI "bombs"), a gzip stream that
inflates past its declared size, NaN and infinity, 4D volumes, multi-frame DICOM, pickled and
5-dimensional .npy, a corrupt safetensors header.
"""

from __future__ import annotations

import base64
import gzip
import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
import pytest

from tests.medvae_support import ct_volume, dicom_bytes, gray_image, nifti_bytes, png_bytes

# route -> (model, base64 field, extra JSON fields)
ROUTES: dict[str, tuple[str, str, dict]] = {
    "/v1/medvae/encode": ("medvae-4-1-2d", "image_base64", {}),
    "/v1/medvae/encode#3d": ("medvae-8-1-3d", "image_base64", {"modality": "ct"}),
    "/v1/medvae/decode": ("medvae-4-1-2d", "latent_base64", {}),
}


def _png_declaring(width: int, height: int) -> bytes:
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = b"IDAT" + zlib.compress(b"\0" * 64)

    def chunk(data: bytes) -> bytes:
        return struct.pack(">I", len(data) - 4) + data + struct.pack(">I", zlib.crc32(data))

    return b"\x89PNG\r\n\x1a\n" + chunk(ihdr) + chunk(idat)


def _png16(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg_truncated() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(gray_image(64)).save(buffer, format="JPEG")
    return buffer.getvalue()[:200]


def _nifti_header_only(shape: tuple[int, ...]) -> bytes:
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.float32)
    return gzip.compress(header.binaryblock + b"\0" * 4 + b"\0" * 1000)


def _gzip_bomb() -> bytes:
    """A .nii.gz holding a 32x32x16 volume, then 300 MB of zeros (1.3 MB compressed)."""
    raw = nifti_bytes(ct_volume((32, 32, 16)), gz=False)
    stream = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = stream.compress(raw)
    zeros = b"\0" * (1 << 20)
    for _ in range(300):
        out += stream.compress(zeros)
    return out + stream.flush()


def _npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _multiframe_dicom() -> bytes:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(gray_image(32))))
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def _nan_volume() -> bytes:
    volume = ct_volume((32, 32, 16))
    volume[1, 2, 3] = np.nan
    return nifti_bytes(volume)


CORPUS: dict[str, Callable[[], bytes]] = {
    "empty": lambda: b"",
    "garbage": lambda: b"\x00\xffnot a medical image at all" * 20,
    "truncated png": lambda: png_bytes(gray_image(64))[:60],
    "truncated jpeg": _jpeg_truncated,
    "truncated dicom": lambda: dicom_bytes(gray_image(64))[:400],
    "truncated nifti": lambda: nifti_bytes(ct_volume((32, 32, 16)), gz=False)[:2000],
    "png 1x1": lambda: png_bytes(np.zeros((1, 1), np.uint8)),
    "png 2x2": lambda: png_bytes(np.zeros((2, 2), np.uint8)),
    "png 3x5": lambda: png_bytes(np.zeros((3, 5), np.uint8)),
    "png 1x4096": lambda: png_bytes(np.zeros((1, 4096), np.uint8)),
    "png16 1x1": lambda: _png16(np.zeros((1, 1))),
    "png bomb": lambda: _png_declaring(100_000, 100_000),
    "nifti bomb": lambda: _nifti_header_only((4096, 4096, 4096)),
    "nifti 4d": lambda: _nifti_header_only((16, 16, 16, 4)),
    "gzip bomb": _gzip_bomb,
    "nan volume": _nan_volume,
    "multi-frame dicom": _multiframe_dicom,
    "pickled npy": lambda: _npy(np.array([{"a": 1}], dtype=object), allow_pickle=True),
    "npy 5d": lambda: _npy(np.zeros((1, 1, 2, 2, 2), np.float32)),
    "npy inf": lambda: _npy(np.full((1, 4, 4), np.inf, np.float32)),
    "safetensors corrupt": lambda: (
        struct.pack("<Q", 40) + b'{"latent": {"dtype": "F32"' + b"x" * 30
    ),
}


@pytest.fixture(scope="module")
def stack(embedded_stack):
    return embedded_stack(["medvae-4-1-2d", "medvae-8-1-3d"])


@pytest.mark.parametrize("route", list(ROUTES))
def test_every_broken_file_is_a_4xx_that_says_what_to_fix(stack, route: str) -> None:
    model, field, extra = ROUTES[route]
    path = route.split("#")[0]
    answers = {}
    for name, make in CORPUS.items():
        body = {"model": model, field: base64.b64encode(make()).decode(), **extra}
        answer = stack.client.post(path, json=body, timeout=120)
        answers[name] = answer
        if name == "gzip bomb":  # a valid volume then 300 MB of zeros: never inflated past it
            assert answer.status_code < 500, answer.text[:300]
            continue
        assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text[:300])
        message = answer.json()["error"]["message"]
        assert len(message) > 20 and "Traceback" not in message, (name, message)
    assert answers["png bomb"].status_code == 413 or route != "/v1/medvae/encode"
    ok = stack.client.post(path, json={"model": model, **extra, field: base64.b64encode(
        png_bytes(gray_image(32)) if "encode" in path and not extra else (
            nifti_bytes(ct_volume((32, 32, 16))) if extra else _npy(np.zeros((1, 8, 8), np.float32))
        )).decode()})  # fmt: skip
    assert ok.status_code == 200, ok.text  # the worker still serves
