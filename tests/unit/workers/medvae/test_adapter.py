"""MedVAE adapter on tiny models: preprocessing values, determinism, sampling, formats, and
every bad input the issue names (each a 422 `InvalidInput` with its reason)."""

from __future__ import annotations

import gzip
import io
import struct
import zlib

import numpy as np
import pytest
import torch

from core.errors import MedserveError, http_status
from model_store.manifest import Intensity
from tests.medvae_support import (
    LPS_AFFINE,
    ct_volume,
    dicom_bytes,
    gray_image,
    load_adapter,
    mri_volume,
    nifti_bytes,
    png_bytes,
    rgb_image,
    run,
    tiny,
)
from workers.imaging import writers
from workers.medvae.compute import latent_affine, prepare_2d, prepare_3d


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("medvae-adapters")
    names = ["medvae-4-1-2d", "medvae-4-3-2d", "medvae-8-1-3d"]
    return {name: load_adapter(tiny(root, name)) for name in names}


def latent(response) -> np.ndarray:
    return response.outputs["LATENT"]


# ---- preprocessing -------------------------------------------------------------------------


CT = Intensity(unit="HU", normalise="window", window=(-1000.0, 1000.0))
MRI = Intensity(normalise="minmax")


def test_2d_preprocessing_scales_each_channel_then_averages() -> None:
    rgb = np.stack([np.full((4, 4), 10.0), np.arange(16.0).reshape(4, 4), np.eye(4) * 255])
    rgb[0, 0, 0] = 20.0
    out = prepare_2d(rgb, 3, from_8bit=True)
    assert out.shape == (3, 4, 4)
    for c in range(3):  # per-channel min-max to [-1, 1]
        assert out[c].min() == -1.0 and out[c].max() == 1.0
    one = prepare_2d(rgb, 1, from_8bit=True)
    assert torch.allclose(one[0], out.mean(0))
    flat = prepare_2d(np.full((1, 4, 4), 7.0), 1, from_8bit=False)
    assert torch.all(flat == -1.0)  # a constant image maps to the lowest value, no NaN


def test_ct_preprocessing_clips_hu_orients_ras_and_crops_to_16() -> None:
    import nibabel as nib

    volume = np.full((40, 36, 20), -3000.0, dtype=np.float32)
    volume[5:30, 4:20, 2:18] = 1000.0
    volume[6, 5, 3] = 5000.0
    x, affine = prepare_3d(volume, LPS_AFFINE, CT)
    assert x.min() >= -1.0 and x.max() <= 1.0  # -3000 and 5000 clipped to +-1000 HU
    assert all(n % 16 == 0 for n in x.shape[1:])
    assert nib.aff2axcodes(affine) == ("R", "A", "S")
    whole, _ = prepare_3d(volume, LPS_AFFINE, CT, crop="none")
    assert tuple(whole.shape[1:]) == (48, 48, 32) and whole[0, -1, -1, -1] == -1.0
    hu = prepare_3d(
        np.array([[[-1000.0, 0.0], [1000.0, 500.0]]] * 16 * 1, np.float32)
        .repeat(8, 1)
        .repeat(8, 2),
        np.eye(4),
        CT,
        crop="none",
    )[0]
    assert set(np.unique(hu.numpy().round(4))) <= {-1.0, 0.0, 1.0, 0.5}


def test_mri_preprocessing_is_min_max() -> None:
    x, _ = prepare_3d(mri_volume(), np.eye(4), MRI, crop="none")
    assert x.max() == 1.0 and x.min() >= -1.0


# ---- encode / decode -------------------------------------------------------------------------


def test_encode_is_deterministic_and_sampling_reproducible(adapters) -> None:
    adapter = adapters["medvae-4-1-2d"]
    image = png_bytes(gray_image(64))
    a, b = latent(run(adapter, {"IMAGE": image})), latent(run(adapter, {"IMAGE": image}))
    assert a.shape == (1, 1, 16, 16) and np.array_equal(a, b)
    s1 = run(adapter, {"IMAGE": image}, sample=True, seed=5)
    s2 = run(adapter, {"IMAGE": image}, sample=True, seed=5)
    s3 = run(adapter, {"IMAGE": image}, sample=True, seed=6)
    assert np.array_equal(latent(s1), latent(s2)) and not np.array_equal(latent(s1), latent(s3))
    assert not np.array_equal(latent(s1), a)
    unseeded = run(adapter, {"IMAGE": image}, sample=True)
    assert isinstance(unseeded.parameters["seed"], int)  # returned so it can be replayed
    stage2 = latent(run(adapter, {"IMAGE": image}, latent="s2"))
    assert stage2.shape == a.shape and not np.array_equal(stage2, a)


def test_batch_of_images_equals_one_at_a_time(adapters) -> None:
    adapter = adapters["medvae-4-1-2d"]
    images = [png_bytes(gray_image(32, seed=s)) for s in range(3)]
    from workers.runtime.oip import InferRequest

    items = []
    for image in images:
        items += adapter.preprocess(InferRequest({"IMAGE": np.array([image], dtype=object)}))
    assert len({item.key for item in items}) == 1  # same shape: one batch
    together = [out for out, _ in adapter.predict(items)]
    alone = [latent(run(adapter, {"IMAGE": image}))[0] for image in images]
    for x, y in zip(together, alone, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-5)
    other = adapter.preprocess(
        InferRequest({"IMAGE": np.array([png_bytes(gray_image(48))], dtype=object)})
    )
    assert other[0].key != items[0].key


def test_decode_2d_to_png_with_provenance(adapters) -> None:
    from PIL import Image

    adapter = adapters["medvae-4-3-2d"]
    z = latent(run(adapter, {"IMAGE": png_bytes(rgb_image(32))}))
    assert z.shape == (1, 3, 8, 8)
    out = run(adapter, {"LATENT": z}, format="png")
    image = Image.open(io.BytesIO(out.outputs["FILE"][0]))
    assert image.size == (32, 32) and image.mode == "RGB"
    assert image.text["medserve:synthetic"] == "true"
    assert image.text["medserve:model"] == "medvae-4-3-2d"
    values = run(adapter, {"LATENT": z}).outputs["IMAGE"]
    assert values.shape == (1, 3, 32, 32) and values.min() >= 0 and values.max() <= 1


def test_latent_formats_npy_safetensors(adapters) -> None:
    adapter = adapters["medvae-4-1-2d"]
    image = png_bytes(gray_image(32))
    z = latent(run(adapter, {"IMAGE": image}))[0]
    for fmt in ("npy", "safetensors"):
        out = run(adapter, {"IMAGE": image}, format=fmt)
        array, meta, _ = writers.read_latent(out.outputs["FILE"][0], 1 << 20)
        np.testing.assert_array_equal(array, z)
        if fmt == "safetensors":
            assert meta["model"] == "medvae-4-1-2d" and meta["latent"] == "s1"
        decoded = run(adapter, {"LATENT_FILE": out.outputs["FILE"][0]})
        assert decoded.outputs["IMAGE"].shape == (1, 1, 32, 32)


def test_3d_nifti_round_trip_keeps_affine(adapters) -> None:
    import nibabel as nib

    adapter = adapters["medvae-8-1-3d"]
    data = nifti_bytes(ct_volume((32, 32, 16)), LPS_AFFINE)
    out = run(adapter, {"IMAGE": data}, modality="ct", format="nifti")
    assert out.parameters["latent"] == "s1"
    blob = out.outputs["FILE"][0]
    img = nib.Nifti1Image.from_bytes(gzip.decompress(blob))
    assert img.shape == (4, 4, 2)
    ras = prepare_3d(ct_volume((32, 32, 16)), LPS_AFFINE, CT)[1]
    np.testing.assert_allclose(img.affine, latent_affine(ras, 8), atol=1e-5)
    assert np.allclose(np.abs(np.diag(img.affine)[:3]), [12.0, 9.6, 16.0])  # spacing x 8
    back = run(adapter, {"LATENT_FILE": blob}, format="nifti")  # modality read from the file
    image = nib.Nifti1Image.from_bytes(gzip.decompress(back.outputs["FILE"][0]))
    assert image.shape == (32, 32, 16)
    np.testing.assert_allclose(image.affine, ras, atol=1e-4)
    assert back.parameters["value_unit"] == "HU"
    hu = np.asarray(image.dataobj)
    assert hu.min() >= -1000 and hu.max() <= 1000


# ---- bad input -----------------------------------------------------------------------------


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares huge dimensions over a few bytes of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat = b"IDAT" + zlib.compress(b"\x00" * 64)
    body += struct.pack(">I", len(idat) - 4) + idat + struct.pack(">I", zlib.crc32(idat))
    return b"\x89PNG\r\n\x1a\n" + body


def nifti_bomb() -> bytes:
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape((4096, 4096, 4096))
    header.set_data_dtype(np.float32)
    return gzip.compress(header.binaryblock + b"\x00" * 4 + b"\x00" * 1000)


BAD = {
    "3D file to a 2D model": ("medvae-4-1-2d", {"IMAGE": "ct"}, {}, "takes 2D input"),
    "2D file to a 3D model": ("medvae-8-1-3d", {"IMAGE": "png"}, {"modality": "ct"}, "takes 3D"),
    "gray image to an RGB model": ("medvae-4-3-2d", {"IMAGE": "png"}, {}, "takes 3"),
    "image too small": ("medvae-4-1-2d", {"IMAGE": "tiny-png"}, {}, "at least 16 pixels"),
    "one-pixel-high strip": ("medvae-4-1-2d", {"IMAGE": "strip-png"}, {}, "at least 16 pixels"),
    "CT DICOM to an X-ray model": ("medvae-4-1-2d", {"IMAGE": "ct-dicom"}, {}, "is CT"),
    "bytes that are no image": (
        "medvae-4-1-2d",
        {"IMAGE": b"hello, not an image" * 10},
        {},
        "not a supported image",
    ),
    "truncated NIfTI": ("medvae-8-1-3d", {"IMAGE": "truncated"}, {"modality": "ct"}, "truncated"),
    "truncated NIfTI gz": (
        "medvae-8-1-3d",
        {"IMAGE": "truncated-gz"},
        {"modality": "ct"},
        "truncated",
    ),
    "NaN voxels": ("medvae-8-1-3d", {"IMAGE": "nan"}, {"modality": "ct"}, "NaN"),
    "inf pixels": ("medvae-4-1-2d", {"PIXELS": "inf"}, {}, "NaN or infinite"),
    "latent of the wrong shape": ("medvae-4-1-2d", {"LATENT": "wrong"}, {}, "does not fit"),
    "3D latent with 2 channels": (
        "medvae-8-1-3d",
        {"LATENT": "wrong3d"},
        {"modality": "ct"},
        "does not fit",
    ),
    "PNG bomb": ("medvae-4-1-2d", {"IMAGE": "bomb"}, {}, "more than"),
    "NIfTI bomb": ("medvae-8-1-3d", {"IMAGE": "nifti-bomb"}, {"modality": "ct"}, "more than"),
    "3D without modality": ("medvae-8-1-3d", {"IMAGE": "ct"}, {}, "modality=ct"),
    "bad seed": ("medvae-4-1-2d", {"IMAGE": "png"}, {"sample": True, "seed": "x"}, "seed"),
}


def make(value):
    if isinstance(value, bytes):
        return value
    volume = ct_volume((32, 32, 16))
    raw = nifti_bytes(volume, gz=False)
    if value == "nan":
        volume[3, 3, 3] = np.nan
    return {
        "ct": lambda: nifti_bytes(volume),
        "png": lambda: png_bytes(gray_image(32)),
        "truncated": lambda: raw[: len(raw) // 2],
        "truncated-gz": lambda: gzip.compress(raw)[:-4000],
        "nan": lambda: nifti_bytes(volume),
        "inf": lambda: np.where(np.eye(32) > 0, np.inf, 1.0).astype(np.float32),
        "tiny-png": lambda: png_bytes(gray_image(2)),
        "strip-png": lambda: png_bytes(np.zeros((1, 4096), np.uint8)),
        "ct-dicom": lambda: dicom_bytes(gray_image(32), modality="CT"),
        "wrong": lambda: np.zeros((1, 3, 8, 8), np.float32),
        "wrong3d": lambda: np.zeros((2, 4, 4, 4), np.float32),
        "bomb": lambda: png_header_only(100_000, 100_000),
        "nifti-bomb": nifti_bomb,
    }[value]()


TOO_LARGE = {"PNG bomb", "NIfTI bomb"}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_with_reason(adapters, case: str) -> None:
    name, inputs, params, reason = BAD[case]
    adapter = adapters[name]
    with pytest.raises(MedserveError) as caught:
        run(adapter, {k: make(v) for k, v in inputs.items()}, **params)
    assert http_status(caught.value) == (413 if case in TOO_LARGE else 422), caught.value.message
    assert reason in caught.value.message
