"""`train-latent-classifier`: the same DenseNet on MedVAE latents and on the images they encode.

MedVAE (arXiv 2502.14753) reports that classifiers trained on its latents keep the clinically
relevant signal at up to 70x the training throughput. Input: a `latent-dataset` job's output
(`manifest.jsonl`, `latents/*.npy|safetensors`) and the labelled CSV of the encoded images;
manifest rows join CSV rows by source path. Both arms share one patient-level split, seeds,
optimiser and schedule; neither is augmented (an affine on latents is not an affine on the
image, so augmenting only one arm would not be a fair comparison). Training throughput
(images per second of the training loop) is measured for each arm in the same run.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import torch
from torch.utils.data import Dataset

from core.errors import InvalidInput
from workers.imaging.writers import read_latent
from workers.training import outputs, report, splits
from workers.training.callbacks import Callbacks
from workers.training.classifier import check_validation
from workers.training.data import ImageSet, TensorSet
from workers.training.loop import Session, Stage, determinism
from workers.training.models import build, count_parameters, latent_stem, load_initial
from workers.training.params import LatentClassifierParams
from workers.training.sources import Table, check_files, read_real

MAX_LATENT_VALUES = 64 * 1024 * 1024


def _key(path: str) -> str:
    """Source paths compared as the latent job wrote them: local paths normalised."""
    path = path.removeprefix("file://")
    return path if "://" in path else os.path.abspath(path)


@dataclass
class LatentInputs:
    params: LatentClassifierParams
    table: Table  # CSV rows that have a latent, in manifest order
    files: list[str]
    shape: list[int]
    factor: int
    stem: str
    split: np.ndarray
    summary: dict[str, Any]

    def part(self, name: str) -> tuple[Table, np.ndarray]:
        index = splits.indices(self.split, name)
        return self.table.subset(index), index


def read_manifest(folder: str) -> list[dict[str, Any]]:
    url = f"{folder.rstrip('/')}/manifest.jsonl"
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.isfile(path):
        raise InvalidInput(f"{url!r} not found: give a latent-dataset job's output folder")
    text = fs.cat_file(path).decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _factor(p: LatentClassifierParams, rows: list[dict[str, Any]]) -> int:
    if p.factor:
        return p.factor
    match = re.match(r"medvae-(\d+)-", str(rows[0].get("model") or ""))
    if not match:
        raise InvalidInput(
            "cannot tell the latents' downsizing factor from the manifest; set `factor`"
        )
    return int(match.group(1))


def prepare(params: dict[str, Any] | LatentClassifierParams) -> LatentInputs:
    """Join manifest and CSV, check shapes and split (cheap: no latent or image is read)."""
    p = outputs.parse(params, LatentClassifierParams)
    real = read_real(p.real)
    rows = [r for r in read_manifest(p.latents) if r.get("status") == "ok" and r.get("latent_file")]
    if not rows:
        raise InvalidInput(
            "the latent dataset has no encoded files (no manifest row with status ok)"
        )
    where = {_key(path): i for i, path in enumerate(real.paths)}
    matched = [(r, where[_key(r["source"])]) for r in rows if _key(r["source"]) in where]
    if not matched:
        raise InvalidInput(
            "none of the latents' source files is a path of the CSV; the CSV must list the "
            "images the latent-dataset job encoded (same folder and relative paths)"
        )
    shapes = {tuple(r.get("shape") or ()) for r, _ in matched}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise InvalidInput(f"latents must all be [C,h,w] of one shape; found {sorted(shapes)[:4]}")
    table = real.subset(np.array([i for _, i in matched]))
    files = [f"{p.latents.rstrip('/')}/{r['latent_file']}" for r, _ in matched]
    check_files(files, "latent")
    check_files(table.paths, "image")
    split = splits.assign(table, p.split, p.train.seed)
    shape = list(next(iter(shapes)))
    stem = latent_stem(p.model, min(shape[1:]))
    inputs = LatentInputs(p, table, files, shape, _factor(p, rows), stem, split, {})
    check_validation(inputs.part("val")[0])
    inputs.summary = {
        "latents": len(rows),
        "matched": len(matched),
        "unmatched": len(rows) - len(matched),
        "latent_shape": shape,
        "factor": inputs.factor,
        "image_side": shape[1] * inputs.factor,
        "latent_stem": stem,
        "labels": real.label_names,
        "splits": {s: int((split == s).sum()) for s in ("train", "val", "test")},
    }
    return inputs


def validate_latent_inputs(params: dict[str, Any] | LatentClassifierParams) -> dict[str, Any]:
    """Submit-time check of a latent-classifier job; a summary of the joined inputs."""
    return prepare(params).summary


def load_latents(files: list[str]) -> torch.Tensor:
    arrays = []
    for url in files:
        with fsspec.open(url, "rb") as handle:
            array, _, _ = read_latent(handle.read(), MAX_LATENT_VALUES)
        arrays.append(array)
    return torch.from_numpy(np.stack(arrays).astype(np.float32))


def _standardise(x: torch.Tensor, train: np.ndarray) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """Per-channel z-score with the training split's statistics (latents have no fixed scale)."""
    mean = x[train].mean(dim=(0, 2, 3), keepdim=True)
    std = x[train].std(dim=(0, 2, 3), keepdim=True).clamp(min=1e-6)
    return (x - mean) / std, {"mean": mean.flatten().tolist(), "std": std.flatten().tolist()}


def train_latent_classifier(
    params: dict[str, Any] | LatentClassifierParams,
    callbacks: Callbacks | None = None,
    resume: bytes | None = None,
) -> dict[str, Any]:
    """Train the latent arm (and the image arm), evaluate both on the test split; metrics doc."""
    inputs = prepare(params)
    p, cb, t = inputs.params, callbacks or Callbacks(), inputs.params.train
    session = Session(t, cb, outputs.fingerprint(p, inputs.table.digest()), resume)
    latents, norm = _standardise(load_latents(inputs.files), splits.indices(inputs.split, "train"))
    side = inputs.shape[1] * inputs.factor
    parts = {s: inputs.part(s) for s in ("train", "val", "test")}
    arms: dict[str, dict[str, Dataset]] = {
        "latent": {s: TensorSet(latents[idx], tab.labels) for s, (tab, idx) in parts.items()}
    }
    if p.compare_images:
        arms["image"] = {
            s: ImageSet(
                tab.paths, tab.labels, side, augment=False, seed=t.seed, cache=t.cache_images
            )
            for s, (tab, _) in parts.items()
        }
    n_labels = len(inputs.table.label_names)
    sizes = {}
    with determinism(t.deterministic, session.device):
        for arm, sets in arms.items():
            torch.manual_seed(t.seed)
            model = build(
                p.model,
                n_labels,
                in_channels=inputs.shape[0] if arm == "latent" else 1,
                stem=inputs.stem if arm == "latent" else "full",
            )
            sizes[arm] = count_parameters(model)
            if arm in session.state["results"]:
                continue
            if p.model.checkpoint:
                load_initial(model, p.model.checkpoint)
            stage = session.run_stage(
                Stage(arm, sets["train"], t.epochs, t.lr),
                model,
                sets["val"],
                parts["val"][0].labels,
            )
            if stage["best_model"] is not None:
                model.load_state_dict(stage["best_model"])
            outputs.finish_arm(
                session,
                arm,
                model,
                (sets["val"], sets["test"]),
                (parts["val"][0], parts["test"][0]),
                {arm: stage},
                cb,
                p.eval.age_bins,
            )
    return _finish(inputs, session, cb, (parts["val"][0], parts["test"][0]), norm, sizes)


def _throughput(session: Session) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for arm, r in session.state["results"].items():
        s = r["stages"][arm]
        out[arm] = {
            "loop_images_per_s": s["samples"] / s["loop_s"] if s["loop_s"] else None,
            "step_images_per_s": s["samples"] / s["step_s"] if s["step_s"] else None,
            "images_seen": s["samples"],
        }
    if "image" in out and out["image"]["loop_images_per_s"]:
        for kind in ("loop", "step"):
            out[f"{kind}_speedup"] = (
                out["latent"][f"{kind}_images_per_s"] / out["image"][f"{kind}_images_per_s"]
            )
    return out


def _finish(
    inputs: LatentInputs,
    session: Session,
    cb: Callbacks,
    tables: tuple[Table, Table],
    norm: dict[str, Any],
    sizes: dict[str, int],
) -> dict[str, Any]:
    p = inputs.params
    metrics = outputs.evaluate_all(session, tables, p.eval, p.train.seed)
    speed = _throughput(session)
    doc = {
        "task": "train-latent-classifier",
        "labels": inputs.table.label_names,
        "inputs": inputs.summary,
        "arms": {
            a: {
                "test": metrics[a],
                "parameters": sizes[a],
                "training": outputs.training_summary(session.state["results"][a]["stages"]),
            }
            for a in metrics
        },
        "throughput": speed,
        "latent_normalisation": norm,
        "seeds": outputs.seeds(p.train.seed),
        "environment": outputs.environment(session),
        "params": p.model_dump(mode="json"),
    }
    cb.save_artifact(outputs.json_bytes(doc), "metrics.json")
    plots = outputs.save_plots(cb, session, tables[1], metrics)
    side = inputs.summary["image_side"]
    intro = [
        f"Latents {inputs.shape} (factor {inputs.factor}) versus {side}x{side} images; "
        f"model {p.model.arch}, latent arm stem: {inputs.stem} (full = unchanged); "
        "no augmentation.",
        "Training throughput (images/s, whole loop incl. data): "
        + ", ".join(
            f"{a} {v['loop_images_per_s']:.1f}"
            for a, v in speed.items()
            if isinstance(v, dict) and v["loop_images_per_s"]
        )
        + (f"; latent/image {speed['loop_speedup']:.2f}x" if "loop_speedup" in speed else "")
        + ".",
    ]
    extra = ["## Plots", "", *(f"![{n}]({n})" for n in plots)]
    cb.save_artifact(
        report.markdown("Latent versus image classifier", intro, metrics, extra).encode(),
        "report.md",
    )
    return doc
