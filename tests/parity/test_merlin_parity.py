"""Parity with the official `merlin-vlm` 0.0.7 package: the same random tiny weights, written by
our builder in the released layout, loaded by the package's own `Merlin(...)` in its own venv
(.venv-merlin, built by scripts/merlin_ref_env.sh).

Compares the MONAI preprocessing (oblique affine, anisotropic spacing, a volume that is padded
and one that is cropped), image features, contrastive embeddings, phenotype logits and
probabilities, five-year probabilities, text embeddings, report image tokens and greedy report
text, within 1e-4 (fp32)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.merlin_support import build_store, ct_phantom, nifti_bytes, oblique_affine

pytestmark = [pytest.mark.parity, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
REF_PYTHON = ROOT / ".venv-merlin" / "bin" / "python"
SCRIPT = Path(__file__).with_name("merlin_reference.py")
TOL = 1e-4
REPORT_TOKENS = 6
TEXTS = ["Liver: Normal. Spleen: normal.", "Mild bibasilar atelectasis; small hiatal hernia!!"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not REF_PYTHON.exists():
        pytest.skip(
            "the official merlin-vlm package's venv is absent: build it with `make merlin-ref-env` "
            "(scripts/merlin_ref_env.sh)"
        )
    root = tmp_path_factory.mktemp("merlin-parity")
    stores = {kind: build_store(root / "store", kind) for kind in ("clip", "five_year", "report")}
    volumes = torch.rand((2, 1, 64, 64, 32), generator=torch.Generator().manual_seed(11))
    np.save(root / "volumes.npy", volumes.numpy())
    (root / "texts.json").write_text(json.dumps(TEXTS))
    niftis = {
        "oblique": nifti_bytes(ct_phantom((90, 70, 33)), oblique_affine()),
        "cropped": nifti_bytes(ct_phantom((160, 40, 90), seed=1), oblique_affine((2.4, 1.2, 6.0))),
    }
    paths = []
    for name, data in niftis.items():
        paths.append(root / f"{name}.nii.gz")
        paths[-1].write_bytes(data)
    out = root / "ref"
    args = [
        str(REF_PYTHON),
        str(SCRIPT),
        *(str(stores[k]) for k in ("clip", "five_year", "report")),
    ]
    args += [str(out), str(root / "volumes.npy"), str(root / "texts.json"), str(REPORT_TOKENS)]
    done = subprocess.run([*args, *map(str, paths)], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
    assert done.returncode == 0, "the reference script failed (see stderr)"
    return {"stores": stores, "volumes": list(volumes), "niftis": niftis, "out": out}


def close(ours: np.ndarray, out: Path, name: str, tol: float = TOL) -> None:
    theirs = np.load(out / f"{name}.npy").reshape(ours.shape)
    assert np.abs(ours - theirs).max() <= tol, (
        f"{name}: max abs diff {np.abs(ours - theirs).max():.2e}"
    )


def test_preprocessing_matches_the_released_monai_pipeline(reference) -> None:
    from workers.merlin.preprocess import prepare

    for index, data in enumerate(reference["niftis"].values()):
        close(prepare(data, 1 << 24).tensor.numpy(), reference["out"], f"input{index}", 1e-6)


def test_image_outputs_match(reference) -> None:
    from workers.merlin.compute import encode_images, sigmoid
    from workers.merlin.model import load_clip

    result = encode_images(load_clip(reference["stores"]["clip"]), reference["volumes"])
    out = reference["out"]
    close(result.features, out, "features")
    close(result.embedding, out, "embedding")
    close(result.phenotype_logits, out, "phenotype_logits")
    close(sigmoid(result.phenotype_logits), out, "phenotype_probs")


def test_five_year_matches(reference) -> None:
    from workers.merlin.compute import five_year
    from workers.merlin.model import load_five_year

    model = load_five_year(reference["stores"]["five_year"])
    close(five_year(model, reference["volumes"]), reference["out"], "five_year")


def test_text_matches(reference) -> None:
    from workers.merlin.compute import embed_texts
    from workers.merlin.model import load_clip, sanitize_report

    ref = json.loads((reference["out"] / "texts.json").read_text())
    assert [sanitize_report(t) for t in TEXTS] == ref["sanitized"]
    raw = load_clip(reference["stores"]["clip"]).encode_text(TEXTS).detach().numpy()
    theirs = np.load(reference["out"] / "text.npy")  # released: L2-normalised
    assert np.abs(raw / np.linalg.norm(raw, axis=1, keepdims=True) - theirs).max() <= TOL
    model = load_clip(reference["stores"]["clip"])
    close(embed_texts(model, TEXTS), reference["out"], "text")


def test_report_generation_matches(reference) -> None:
    from workers.merlin.compute import generate_reports
    from workers.merlin.prompts import split_report
    from workers.merlin.report_model import load_report

    model = load_report(reference["stores"]["report"])
    with torch.no_grad():
        tokens = model.image_tokens(torch.stack(reference["volumes"])).numpy()
    close(tokens, reference["out"], "image_tokens")
    ours = generate_reports(model, reference["volumes"], ["liver", "lower thorax"],
                            max_new_tokens=REPORT_TOKENS)  # fmt: skip
    theirs = json.loads((reference["out"] / "texts.json").read_text())["reports"]
    for organ, texts in theirs.items():
        assert [r[organ] for r in ours] == [split_report(t) for t in texts]
