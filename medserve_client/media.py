"""Files the gateway returns, read into arrays and images on demand.

Results keep the file's bytes; these helpers import numpy, Pillow or pydicom only when called,
and say how to install them when they are missing. NIfTI and safetensors are read here (a
header and raw data), so volumes and latents need numpy only.
"""

from __future__ import annotations

import gzip
import importlib
import io
import json
import struct
from typing import Any

INSTALL_HINTS = {
    "numpy": "pip install numpy",
    "PIL": "pip install pillow (or 'medserve[worker]')",
    "pydicom": "pip install pydicom (or 'medserve[worker]')",
}


def need(module: str) -> Any:
    """Import `module`, or ImportError saying which package to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        hint = INSTALL_HINTS.get(top, f"pip install {top}")
        raise ImportError(f"this needs {top}: {hint}") from None


def to_pil(data: bytes) -> Any:
    """A PNG or JPEG file as a `PIL.Image.Image` (fully loaded)."""
    image_mod = need("PIL.Image")
    image = image_mod.open(io.BytesIO(data))
    image.load()
    return image


def to_array(data: bytes, media_type: str) -> Any:
    """Any file the gateway returns as a numpy array (NIfTI: the voxels; see `read_nifti`)."""
    np = need("numpy")
    kind = sniff(data) or media_type
    if kind == "npy" or media_type == "application/x-npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    if kind == "safetensors":
        return read_safetensors(data)[0]
    if kind == "nifti":
        return read_nifti(data)[0]
    if kind == "dicom":
        pydicom = need("pydicom")
        return pydicom.dcmread(io.BytesIO(data)).pixel_array
    return np.asarray(to_pil(data))


def sniff(data: bytes) -> str | None:
    """File kind from its first bytes: png, jpeg, npy, dicom, nifti, safetensors, or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:6] == b"\x93NUMPY":
        return "npy"
    if data[128:132] == b"DICM":
        return "dicom"
    if data[:2] == b"\x1f\x8b" or data[344:348] in (b"n+1\x00", b"ni1\x00"):
        return "nifti"
    if len(data) > 8 and data[8:9] == b"{":
        return "safetensors"
    return None


_ST_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "BF16": None, "U8": "u1", "I8": "i1",
              "I16": "<i2", "U16": "<u2", "I32": "<i4", "I64": "<i8", "BOOL": "?"}  # fmt: skip


def read_safetensors(data: bytes) -> tuple[Any, dict[str, Any]]:
    """The one tensor of a safetensors file and its metadata (values decoded from JSON)."""
    np = need("numpy")
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    meta = {}
    for key, value in (header.pop("__metadata__", None) or {}).items():
        try:
            meta[key] = json.loads(value)
        except (TypeError, ValueError):
            meta[key] = value
    if len(header) != 1:
        raise ValueError(f"expected one tensor in the safetensors file, found {len(header)}")
    (info,) = header.values()
    dtype = _ST_DTYPES.get(info["dtype"])
    if dtype is None:
        raise ValueError(f"safetensors dtype {info['dtype']} is not supported here")
    start, end = info["data_offsets"]
    body = data[8 + length + start : 8 + length + end]
    return np.frombuffer(body, dtype=dtype).reshape(info["shape"]).copy(), meta


_NIFTI_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2",
                 768: "u4", 1024: "i8", 1280: "u8"}  # fmt: skip


def read_nifti(data: bytes) -> tuple[Any, Any]:
    """A NIfTI-1 volume (gzipped or not) as (voxels [X,Y,Z...], 4x4 voxel-to-RAS affine).

    Scaling (`scl_slope`/`scl_inter`) is applied; the affine is the sform when it is set, else
    the voxel sizes on the diagonal. (NIfTI-2 and qform-only files: use nibabel.)
    """
    np = need("numpy")
    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    endian = "<" if struct.unpack("<i", raw[:4])[0] == 348 else ">"
    if struct.unpack(endian + "i", raw[:4])[0] != 348:
        raise ValueError("not a NIfTI-1 file (NIfTI-2 files: read them with nibabel)")
    dim = struct.unpack(endian + "8h", raw[40:56])
    datatype = struct.unpack(endian + "h", raw[70:72])[0]
    pixdim = struct.unpack(endian + "8f", raw[76:108])
    vox_offset = int(struct.unpack(endian + "f", raw[108:112])[0])
    slope, inter = struct.unpack(endian + "2f", raw[112:120])
    sform_code = struct.unpack(endian + "h", raw[254:256])[0]
    code = _NIFTI_DTYPES.get(datatype)
    if code is None:
        raise ValueError(f"NIfTI datatype {datatype} is not supported here")
    shape = dim[1 : 1 + dim[0]]
    count = int(np.prod(shape))
    voxels = np.frombuffer(raw, dtype=np.dtype(endian + code), count=count, offset=vox_offset)
    voxels = voxels.reshape(shape, order="F").copy()
    if slope not in (0.0, 1.0) or inter != 0.0:
        voxels = voxels * (slope or 1.0) + inter
    if sform_code > 0:
        rows = struct.unpack(endian + "12f", raw[280:328])
        affine = np.array([*rows, 0.0, 0.0, 0.0, 1.0], dtype=np.float64).reshape(4, 4)
    else:
        affine = np.diag([pixdim[1] or 1.0, pixdim[2] or 1.0, pixdim[3] or 1.0, 1.0])
    return voxels, affine
