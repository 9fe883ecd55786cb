"""Parity with the official `medvae` package: same random weights, written by our builder in the
released checkpoint format, loaded by the package's own factory in its own venv (.venv-medvae).

Compares preprocessing, the stage-1 posterior mean, the stage-2 latent, decoding, seeded
sampling and 3D sliding-window encode/decode, within 1e-5 (fp32)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.medvae_support import (
    ALL,
    LPS_AFFINE,
    VARIANTS_2D,
    VARIANTS_3D,
    ct_volume,
    gray_image,
    load_adapter,
    mri_volume,
    nifti_bytes,
    png_bytes,
    rgb_image,
    run,
    tiny,
)

pytestmark = [pytest.mark.parity, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
REF_PYTHON = ROOT / ".venv-medvae" / "bin" / "python"
SCRIPT = Path(__file__).with_name("medvae_reference.py")
TOL = 1e-5
SEED = 1234  # the seed medvae_reference.py uses


def key(name: str) -> str:
    return name.replace("-", "_")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, bytes]]:
    if not REF_PYTHON.exists():
        pytest.skip(
            "the official medvae package's venv is absent: build it with `make medvae-ref-env` "
            "(scripts/medvae_ref_env.sh)"
        )
    root = tmp_path_factory.mktemp("medvae-parity")
    store, out = root / "store", root / "ref"
    for name in ALL:
        tiny(store, name)
    files = {
        "gray": png_bytes(gray_image(64)),
        "rgb": png_bytes(rgb_image(64)),
        "ct": nifti_bytes(ct_volume((64, 64, 32)), LPS_AFFINE),
        "mri": nifti_bytes(mri_volume(), LPS_AFFINE),
    }
    paths = {}
    for label, data in files.items():
        suffix = ".png" if label in ("gray", "rgb") else ".nii.gz"
        paths[label] = root / f"{label}{suffix}"
        paths[label].write_bytes(data)
    args = [str(REF_PYTHON), str(SCRIPT), str(store), str(out)]
    args += [str(paths[k]) for k in ("gray", "rgb", "ct", "mri")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
    assert done.returncode == 0, "the reference script failed (see stderr)"
    return store, out, files


def ref(out: Path, name: str, what: str) -> np.ndarray:
    return np.load(out / f"{key(name)}.{what}.npy")


def close(ours: np.ndarray, theirs: np.ndarray) -> None:
    theirs = theirs.reshape(ours.shape)
    assert np.abs(ours - theirs).max() <= TOL, f"max abs diff {np.abs(ours - theirs).max():.2e}"


@pytest.mark.parametrize("name", VARIANTS_2D)
def test_2d_matches_package(reference, name: str) -> None:
    from workers.imaging.readers import read_raster
    from workers.medvae.compute import prepare_2d

    store, out, files = reference
    adapter = load_adapter(tiny(store, name))
    image = files["gray"] if name.endswith(("4-1-2d", "8-1-2d")) else files["rgb"]
    decoded = read_raster(image, 1 << 20)
    x = prepare_2d(decoded.array, adapter.model.in_channels, True).numpy()
    close(x, ref(out, name, "input"))

    s1 = run(adapter, {"IMAGE": image}).outputs["LATENT"][0]
    close(s1, ref(out, name, "s1"))
    s2 = run(adapter, {"IMAGE": image}, latent="s2").outputs["LATENT"][0]
    close(s2, ref(out, name, "s2"))
    sampled = run(adapter, {"IMAGE": image}, sample=True, seed=SEED).outputs["LATENT"][0]
    close(sampled, ref(out, name, "sample"))
    assert np.abs(sampled - s1).max() > 1e-3  # sampling really samples
    image_out = run(adapter, {"LATENT": s1[None]}).outputs["IMAGE"][0]
    theirs = ref(out, name, "decoded").reshape(image_out.shape)
    close(image_out, np.clip((theirs + 1) / 2, 0, 1))


@pytest.mark.parametrize("name", VARIANTS_3D)
def test_3d_matches_package(reference, name: str) -> None:
    from workers.imaging.readers import read_nifti
    from workers.medvae.compute import Window, decode_volume, prepare_3d

    store, out, files = reference
    adapter = load_adapter(tiny(store, name))
    for modality in ("ct", "mri"):
        decoded = read_nifti(files[modality], 1 << 24)
        x, _ = prepare_3d(decoded.array, decoded.affine, adapter.manifest.input.intensity[modality])
        close(x.numpy(), ref(out, name, f"{modality}.input"))

    s1 = run(adapter, {"IMAGE": files["ct"]}, modality="ct", roi_size=32).outputs["LATENT"][0]
    close(s1, ref(out, name, "s1"))
    sampled = run(adapter, {"IMAGE": files["ct"]}, modality="ct", roi_size=32, sample=True,
                  seed=SEED).outputs["LATENT"][0]  # fmt: skip
    close(sampled, ref(out, name, "sample"))
    import torch

    decoded_volume = decode_volume(adapter.model, torch.from_numpy(s1), Window(roi=32))
    close(decoded_volume, ref(out, name, "decoded"))
