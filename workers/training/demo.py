"""Demo data for the training jobs: tiny chest-film stand-ins with a planted, learnable signal.

Each image is noise plus, per positive label, a bright shape (Cardiomegaly: a large, faint
disc; Pleural Effusion: a small, bright band at the bottom left). In the real set the shapes
are fainter for one subgroup (`race == "B"`), so a classifier misses more of its findings and
the underdiagnosis gap is measurable; the synthetic set is balanced and full-strength.
Latents are 4x average-pooled images in the latent-dataset layout. The tests and
docs/training.md use it: `python -m workers.training.demo OUT` writes `OUT/real/labels.csv`
(+ images), `OUT/synthetic` (a synthetic-dataset imagefolder) and `OUT/latents`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

LABELS = ["No Finding", "Cardiomegaly", "Pleural Effusion"]
DISEASES = LABELS[1:]


def draw(rng: np.random.Generator, positives: list[str], side: int, strength: float) -> np.ndarray:
    """One 8-bit image with the shapes of `positives` at `strength` (0..1)."""
    y, x = np.mgrid[0:side, 0:side] / side
    img = 0.35 + 0.08 * rng.standard_normal((side, side))
    if "Cardiomegaly" in positives:
        img += strength * 0.3 * (((x - 0.6) ** 2 + (y - 0.35) ** 2) < 0.27**2)
    if "Pleural Effusion" in positives:
        img += strength * 0.6 * ((y > 0.78) & (x < 0.4))
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_real(
    folder: Path, patients: int = 90, side: int = 32, seed: int = 0, weak: float = 0.45
) -> Path:
    """`folder/labels.csv` + `folder/images/*.png`; 1-2 images per patient. Returns the CSV."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for pid in range(patients):
        sex = ("Male", "Female")[pid % 2]
        race = ("A", "B")[(pid // 2) % 2]
        age = int(rng.integers(20, 90))
        for k in range(1 + int(rng.integers(0, 2))):
            positives = [d for d in DISEASES if rng.random() < 0.4]
            strength = weak if race == "B" else 1.0
            rel = f"images/p{pid:04d}_{k}.png"
            (folder / rel).write_bytes(_png(draw(rng, positives, side, strength)))
            row = {
                "Path": rel,
                "PatientID": f"P{pid:04d}",
                "Sex": sex,
                "Age": age,
                "Race": race,
                "No Finding": "" if positives else "1",
            }
            for d in DISEASES:
                row[d] = "1" if d in positives else ("0" if rng.random() < 0.5 else "")
            rows.append(row)
    path = folder / "labels.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


SYNTHETIC_FINDINGS = {
    "No acute cardiopulmonary process.": [],
    "Cardiomegaly.": ["Cardiomegaly"],
    "Pleural effusion": ["Pleural Effusion"],
    "Cardiomegaly, pleural effusion": ["Cardiomegaly", "Pleural Effusion"],
}


def write_synthetic(
    folder: Path,
    per_cell: int = 4,
    side: int = 32,
    seed: int = 1,
    findings: dict[str, list[str]] | None = None,
) -> Path:
    """A `synthetic-dataset`-shaped imagefolder (findings x sex x race cells)."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for finding, positives in (findings or SYNTHETIC_FINDINGS).items():
        for sex in ("female", "male"):
            for race in ("A", "B"):
                for _ in range(per_cell):
                    index = len(rows)
                    rel = f"images/{index // 1000:04d}/{index:06d}.png"
                    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                    (folder / rel).write_bytes(_png(draw(rng, positives, side, 1.0)))
                    age = int(rng.integers(18, 95))
                    rows.append(
                        {
                            "file_name": rel,
                            "index": index,
                            "finding": finding,
                            "sex": sex,
                            "age": age,
                            "age_bin": "18-95",
                            "race": race,
                            "synthetic": True,
                        }
                    )
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def write_latents(
    folder: Path, csv_path: Path, factor: int = 4, relative_to: Path | None = None
) -> Path:
    """A `latent-dataset`-shaped output for the CSV's images: [1, h, w] float32 .npy each.

    `source` is the image path as the latent job records it (absolute), or relative to
    `relative_to` (what a process started there resolves to the same file)."""
    (folder / "latents").mkdir(parents=True, exist_ok=True)
    with csv_path.open() as handle:
        paths = [str(csv_path.parent / r["Path"]) for r in csv.DictReader(handle)]
    rows = []
    for i, source in enumerate(sorted(paths)):
        pixels = np.asarray(Image.open(source), dtype=np.float32) / 127.5 - 1.0
        h, w = pixels.shape
        latent = pixels.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))[None]
        rel = f"latents/{i:06d}-{Path(source).stem}.npy"
        np.save(folder / rel, latent.astype(np.float32))
        rows.append(
            {
                "index": i,
                "source": os.path.relpath(source, relative_to) if relative_to else source,
                "status": "ok",
                "latent_file": rel,
                "shape": list(latent.shape),
                "model": f"medvae-{factor}-1-2d",
                "latent": "s1",
                "modality": "xray",
            }
        )
    (folder / "manifest.jsonl").write_text(
        "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    )
    return folder


def tiny_params(csv_path: Path, synthetic: Path | None = None, **train: Any) -> dict[str, Any]:
    """Classifier params for the tiny data: small DenseNet, 32 px, few epochs, CPU."""
    options = {
        "image_size": 32,
        "batch_size": 8,
        "epochs": 4,
        "pretrain_epochs": 2,
        "lr": 1e-2,
        "patience": 10,
        "device": "cpu",
        "seed": 0,
        **train,
    }
    params: dict[str, Any] = {
        "real": {"csv": str(csv_path), "patient_column": "PatientID", "labels": LABELS},
        "model": {
            "arch": "densenet",
            "init_features": 16,
            "growth_rate": 8,
            "block_config": [2, 2],
        },
        "train": options,
        "eval": {"bootstrap": 50, "min_group_size": 3},
        "split": {"val_fraction": 0.2, "test_fraction": 0.3},
    }
    if synthetic is not None:
        params["synthetic"] = {"folder": str(synthetic)}
    return params


def main(argv: list[str] | None = None) -> None:
    """`python -m workers.training.demo OUT`: real CSV + images, synthetic set and latents."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", type=Path, help="Folder to write real/, synthetic/, latents/ in.")
    parser.add_argument("--patients", type=int, default=90)
    parser.add_argument("--side", type=int, default=32, help="Image side in pixels.")
    parser.add_argument("--per-cell", type=int, default=4, help="Synthetic images per cell.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--relative", action="store_true", help="Latent sources relative to this folder."
    )
    args = parser.parse_args(argv)
    csv_path = write_real(args.out / "real", args.patients, args.side, args.seed)
    synthetic = write_synthetic(args.out / "synthetic", args.per_cell, args.side, args.seed + 1)
    base = Path.cwd() if args.relative else None
    latents = write_latents(args.out / "latents", csv_path, relative_to=base)
    paths = {"csv": csv_path, "synthetic": synthetic, "latents": latents}
    print(json.dumps({k: str(v.resolve()) for k, v in paths.items()}))


if __name__ == "__main__":
    main()
