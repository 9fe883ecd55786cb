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

from typing import Any

import fsspec
import numpy as np
import torch
from torch.utils.data import Dataset

from workers.imaging.writers import read_latent
from workers.training import outputs, report, splits
from workers.training.callbacks import Callbacks
from workers.training.data import ImageSet, TensorSet
from workers.training.inputs import LatentInputs, prepare_latent
from workers.training.loop import Session, Stage, determinism
from workers.training.metrics import to_json
from workers.training.models import build, count_parameters, load_initial
from workers.training.params import LatentClassifierParams
from workers.training.sources import Table

MAX_LATENT_VALUES = 64 * 1024 * 1024


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
    inputs = prepare_latent(params)
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
    doc = to_json(doc)
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
