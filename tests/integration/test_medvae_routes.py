"""MedVAE routes through the real stack (gateway + worker processes, tiny models)."""

from __future__ import annotations

import base64
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest

from tests.medvae_support import ct_volume, gray_image, nifti_bytes, png_bytes

MODELS = ["medvae-4-1-2d", "medvae-8-1-3d"]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "medvae"


@pytest.fixture(scope="module")
def client(embedded_stack):
    return embedded_stack(MODELS).client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_encode_json_then_decode_png(client) -> None:
    from PIL import Image

    image = png_bytes(gray_image(64))
    r = client.post("/v1/medvae/encode", json={"model": "medvae-4-1-2d", "image_b64": b64(image)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["shape"] == [1, 16, 16] and body["latent"] == "s1" and body["factor"] == 4
    assert body["weights"] == "random-tiny" and body["weights_digest"].startswith("sha256:")
    latent = np.load(io.BytesIO(base64.b64decode(body["data_base64"])))
    assert latent.shape == (1, 16, 16) and latent.dtype == np.float32
    assert body["data_b64"] == body["data_base64"]  # the old name stays for old clients
    again = client.post(
        "/v1/medvae/encode", json={"model": "medvae-4-1-2d", "image_base64": b64(image)}
    )
    assert again.json()["data_base64"] == body["data_base64"]  # deterministic by default

    r = client.post(
        "/v1/medvae/decode", json={"model": "medvae-4-1-2d", "latent_b64": body["data_b64"]}
    )
    assert r.status_code == 200, r.text
    png = Image.open(io.BytesIO(base64.b64decode(r.json()["data_b64"])))
    assert png.size == (64, 64) and png.text["medserve:synthetic"] == "true"
    assert r.json()["synthetic"] is True


def test_multipart_upload_and_raw_file_response(client) -> None:
    files = {"file": ("x.png", png_bytes(gray_image(32)), "image/png")}
    data = {
        "model": "medvae-4-1-2d",
        "format": "safetensors",
        "response": "file",
        "sample": "true",
        "seed": "3",
    }
    r = client.post("/v1/medvae/encode", files=files, data=data)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-safetensors"
    assert r.headers["x-medserve-shape"] == "[1, 8, 8]" and r.headers["x-medserve-seed"] == "3"
    from safetensors.numpy import load

    assert load(r.content)["latent"].shape == (1, 8, 8)
    second = client.post("/v1/medvae/encode", files=files, data=data)
    # seeded sampling is reproducible (compare tensors: safetensors' metadata order varies)
    np.testing.assert_array_equal(load(second.content)["latent"], load(r.content)["latent"])


def test_3d_encode_nifti_and_decode(client) -> None:
    import nibabel as nib

    volume = nifti_bytes(ct_volume((32, 32, 16)), np.diag([1.0, 1.0, 2.0, 1.0]))
    body = {"model": "medvae-8-1-3d", "modality": "ct", "image_b64": b64(volume), "format": "nifti"}
    r = client.post("/v1/medvae/encode", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["shape"] == [1, 4, 4, 2] and out["affine"][2][2] == 16.0
    latent = nib.Nifti1Image.from_bytes(gzip.decompress(base64.b64decode(out["data_b64"])))
    assert latent.shape == (4, 4, 2)
    r = client.post(
        "/v1/medvae/decode", json={"model": "medvae-8-1-3d", "latent_b64": out["data_b64"]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["value_unit"] == "HU" and r.json()["shape"] == [1, 32, 32, 16]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            {"model": "medvae-4-1-2d", "image_b64": b64(b"not an image at all")},
            "not a supported image",
        ),
        (
            {
                "model": "medvae-8-1-3d",
                "modality": "ct",
                "image_b64": b64(png_bytes(gray_image(32))),
            },
            "is a 2D image but model 'medvae-8-1-3d' takes 3D input",
        ),
        (
            {"model": "medvae-4-1-2d", "image_b64": b64(nifti_bytes(ct_volume((32, 32, 16))))},
            "is a 3D volume but model 'medvae-4-1-2d' takes 2D input",
        ),
        ({"model": "medvae-4-1-2d", "image_b64": "%%%"}, "base64"),
        ({"model": "medvae-4-1-2d"}, "exactly one"),
    ],
)
def test_bad_encode_is_422(client, body, reason) -> None:
    r = client.post("/v1/medvae/encode", json=body)
    assert r.status_code == 422, r.text
    assert reason in r.json()["error"]["message"]


def test_bad_latent_is_422(client) -> None:
    tensor = {"shape": [2, 4, 4], "datatype": "FP32", "data": [0.0] * 32}
    r = client.post("/v1/medvae/decode", json={"model": "medvae-4-1-2d", "tensor": tensor})
    assert r.status_code == 422 and "does not fit" in r.json()["error"]["message"]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_examples(client, path: Path) -> None:
    example = json.loads(path.read_text())
    if "body_file" in example:
        content = (EXAMPLES / example["body_file"]).read_bytes()
        r = client.post(
            example["path"], content=content, headers={"content-type": example["content_type"]}
        )
    else:
        r = client.post(example["path"], json=example["body"])
    assert r.status_code == example["expect_status"], r.text


def test_every_multipart_field_is_coerced_like_its_json_twin(client) -> None:
    from PIL import Image

    image = png_bytes(gray_image(32))
    fields = {"model": "medvae-4-1-2d", "modality": "xray", "latent": "s1", "sample": "true",
              "seed": "3", "format": "safetensors", "crop": "foreground", "roi_size": "32",
              "spacing": "[1, 1, 1]", "response": "json"}  # fmt: skip
    r = client.post("/v1/medvae/encode", data=fields, files={"file": ("x.png", image)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sample"] is True and body["seed"] == 3 and body["format"] == "safetensors"
    same = client.post("/v1/medvae/encode", json={**{k: v for k, v in fields.items()},
                       "sample": True, "seed": 3, "roi_size": 32, "spacing": [1, 1, 1],
                       "image_base64": b64(image)})  # fmt: skip
    from safetensors.numpy import load

    tensors = [load(base64.b64decode(x["data_base64"])) for x in (body, same.json())]
    np.testing.assert_array_equal(tensors[0]["latent"], tensors[1]["latent"])  # same sample
    latent = encode_npy(client, image)
    decoded = client.post(
        "/v1/medvae/decode",
        data={"model": "medvae-4-1-2d", "bits": "16", "format": "png", "modality": "xray",
              "response": "file"},
        files={"file": ("latent.npy", latent)},
    )  # fmt: skip
    assert decoded.status_code == 200, decoded.text
    png = Image.open(io.BytesIO(decoded.content))
    assert png.mode.startswith("I;16") or png.mode == "I"  # a 16-bit PNG over multipart
    bad = client.post("/v1/medvae/decode", data={"model": "medvae-4-1-2d", "bits": "12"},
                      files={"file": ("latent.npy", latent)})  # fmt: skip
    assert bad.status_code == 422 and "field 'bits'" in bad.json()["error"]["message"]


def encode_npy(client, image: bytes) -> bytes:
    r = client.post(
        "/v1/medvae/encode", json={"model": "medvae-4-1-2d", "image_base64": b64(image)}
    )
    return base64.b64decode(r.json()["data_base64"])
