"""Encode arrays as files (.npy, safetensors, NIfTI, PNG) and read latent files back.

numpy, Pillow, nibabel and safetensors' numpy API only (no torch). Metadata travels inside the
file where the format allows it (safetensors `__metadata__`, PNG text chunks, NIfTI description
and extension), so a latent carries which model and latent kind produced it.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from core.errors import InvalidInput
from workers.imaging.readers import check_finite, read_nifti, read_npy, sniff

MEDIA_TYPES = {
    "npy": "application/x-npy",
    "safetensors": "application/x-safetensors",
    "nifti": "application/x-nifti-gz",
    "png": "image/png",
}
META_PREFIX = "medserve:"


def to_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def to_safetensors(array: np.ndarray, meta: dict[str, Any], name: str = "latent") -> bytes:
    from safetensors.numpy import save

    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    return bytes(save({name: np.ascontiguousarray(array)}, metadata=text))


def to_nifti(array: np.ndarray, affine: np.ndarray, meta: dict[str, Any]) -> bytes:
    """A gzipped NIfTI-1 file of one [X,Y,Z] volume ([1,X,Y,Z] is squeezed)."""
    import gzip

    import nibabel as nib

    data = np.asarray(array, dtype=np.float32)
    if data.ndim == 4 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 3:
        raise InvalidInput(
            "NIfTI output holds one 3D volume; use npy or safetensors for 2D latents"
        )
    image = nib.Nifti1Image(data, affine)
    image.header["descrip"] = json.dumps(
        {"model": meta.get("model"), "latent": meta.get("latent")}
    )[:79]
    image.header.extensions.append(nib.nifti1.Nifti1Extension("comment", json.dumps(meta).encode()))
    image.header.set_xyzt_units("mm")
    return gzip.compress(image.to_bytes(), compresslevel=1)


def to_png(image: np.ndarray, meta: dict[str, Any], bits: int = 8) -> bytes:
    """[C,H,W] or [H,W] values in [0,1] as an 8- or 16-bit PNG with provenance text chunks."""
    from PIL import Image, PngImagePlugin

    data = np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)
    if data.ndim == 3:
        data = data[0] if data.shape[0] == 1 else np.moveaxis(data, 0, -1)
    if bits == 16:
        if data.ndim != 2:
            raise InvalidInput("16-bit PNG output is grayscale only; ask for bits=8 for RGB")
        pil = Image.fromarray(np.round(data * 65535).astype(np.uint16))
    else:
        pil = Image.fromarray(np.round(data * 255).astype(np.uint8))
    info = PngImagePlugin.PngInfo()
    for key, value in meta.items():
        info.add_text(META_PREFIX + key, value if isinstance(value, str) else json.dumps(value))
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def encode_array(
    array: np.ndarray, fmt: str, meta: dict[str, Any], affine: np.ndarray | None = None
) -> bytes:
    if fmt == "npy":
        return to_npy(array)
    if fmt == "safetensors":
        return to_safetensors(array, meta)
    if fmt == "nifti":
        return to_nifti(array, affine if affine is not None else np.eye(4), meta)
    raise InvalidInput(f"format {fmt!r} is not supported; use npy, safetensors or nifti")


def read_latent(
    data: bytes, max_values: int
) -> tuple[np.ndarray, dict[str, Any], np.ndarray | None]:
    """A latent file (.npy, safetensors with one tensor, NIfTI) -> (array, metadata, affine).

    NIfTI latents are returned as [1,X,Y,Z]."""
    kind = sniff(data)
    meta: dict[str, Any] = {}
    affine = None
    if kind == "npy":
        array = read_npy(data, max_values)
    elif kind == "safetensors":
        from safetensors.numpy import load

        try:
            tensors = load(data)
            header_len = int.from_bytes(data[:8], "little")
            header = json.loads(data[8 : 8 + header_len])
        except Exception:
            raise InvalidInput("the safetensors data is truncated or corrupt") from None
        if len(tensors) != 1:
            raise InvalidInput(
                f"the safetensors file holds {len(tensors)} tensors; send one latent"
            )
        array = next(iter(tensors.values()))
        for key, value in (header.get("__metadata__") or {}).items():
            try:
                meta[key] = json.loads(value)
            except ValueError:
                meta[key] = value
    elif kind == "nifti":
        decoded = read_nifti(data, max_values)
        array, affine = decoded.array[None], decoded.affine
        try:  # the comment extension written by `to_nifti`
            meta = json.loads(decoded.info.get("comment") or "{}")
        except ValueError:
            meta = {}
    else:
        raise InvalidInput("the latent is not .npy, safetensors or NIfTI data")
    if array.dtype.kind not in "fiu":
        raise InvalidInput("the latent must be a numeric array")
    array = np.asarray(array, dtype=np.float32)
    check_finite(array, "latent")
    return array, meta, affine
