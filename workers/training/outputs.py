"""Shared by both jobs: parse params, finish a run (predictions, weights), metrics and plots."""

from __future__ import annotations

import hashlib
import io
import json
import platform
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn
from torch.utils.data import Dataset

from workers.training import report
from workers.training.callbacks import Callbacks
from workers.training.loop import Session
from workers.training.metrics import age_bin, evaluate, to_json
from workers.training.params import EvalOptions
from workers.training.sources import Table

# Options that change how a run executes, never what it computes: left out of the fingerprint.
EXECUTION_ONLY: Any = {
    "train": {"num_workers", "checkpoint_every_steps", "cache_images"},
    "eval": True,
}


def fingerprint(params: BaseModel, *digests: str) -> str:
    doc = params.model_dump(mode="json", exclude=EXECUTION_ONLY)
    text = json.dumps(doc, sort_keys=True) + "|" + "|".join(digests)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def demographics(table: Table, bins: list[tuple[int, int]]) -> dict[str, list[Any]]:
    return {"sex": table.sex, "race": table.race, "age_bin": [age_bin(a, bins) for a in table.age]}


def finish_arm(
    session: Session,
    arm: str,
    model: nn.Module,
    sets: tuple[Dataset, Dataset],
    tables: tuple[Table, Table],
    stages: dict[str, Any],
    callbacks: Callbacks,
    bins: list[tuple[int, int]],
) -> None:
    """Predict val and test with the final weights, hand over predictions and weights, record."""
    val_probs, test_probs = session.predict(model, sets[0]), session.predict(model, sets[1])
    callbacks.save_artifact(
        report.predictions_csv(
            [("val", tables[0], val_probs), ("test", tables[1], test_probs)], bins
        ),
        f"predictions/{arm}.csv",
    )
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    callbacks.save_artifact(buffer.getvalue(), f"models/{arm}.pt")
    for stage in stages.values():
        stage["best_model"] = None  # the final weights are an artifact now; keep checkpoints small
    session.state["results"][arm] = {
        "val_probs": val_probs,
        "test_probs": test_probs,
        "stages": {k: {x: v for x, v in s.items() if x != "best_model"} for k, s in stages.items()},
    }
    session.save(f"{arm}-done.ckpt", None)


def training_summary(stages: dict[str, Any]) -> dict[str, Any]:
    """Per stage: best epoch and val AUROC, epochs run, training-loop images per second."""
    out = {}
    for key, s in stages.items():
        out[key] = {
            "best_epoch": s["best_epoch"],
            "best_val_mean_auroc": s["best"] if np.isfinite(s["best"]) else None,
            "epochs_run": len(s["history"]),
            "steps_per_epoch": s["steps_per_epoch"],
            "images_seen": s["samples"],
            "loop_images_per_s": s["samples"] / s["loop_s"] if s["loop_s"] else None,
            "step_images_per_s": s["samples"] / s["step_s"] if s["step_s"] else None,
            "history": s["history"],
        }
    return out


def evaluate_all(
    session: Session, tables: tuple[Table, Table], options: EvalOptions, seed: int
) -> dict[str, Any]:
    val, test = tables
    demo = demographics(test, options.age_bins)
    return {
        arm: evaluate(
            val.labels,
            r["val_probs"],
            test.labels,
            r["test_probs"],
            demo,
            test.label_names,
            options,
            seed,
        )
        for arm, r in session.state["results"].items()
    }


def save_plots(
    callbacks: Callbacks, session: Session, test: Table, metrics: dict[str, Any]
) -> list[str]:
    names = []
    for arm, r in session.state["results"].items():
        aurocs = {k: v["auroc"] for k, v in metrics[arm]["labels"].items()}
        name = f"plots/roc-{arm}.png"
        callbacks.save_artifact(
            report.roc_plot(
                f"ROC, test split: {arm}", test.labels, r["test_probs"], test.label_names, aurocs
            ),
            name,
        )
        names.append(name)
    for attribute in next(iter(metrics.values()))["underdiagnosis"]["by"]:
        name = f"plots/underdiagnosis-{attribute.replace('+', '_')}.png"
        callbacks.save_artifact(report.underdiagnosis_plot(attribute, metrics), name)
        names.append(name)
    return names


def environment(session: Session) -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(session.device),
        "amp": str(session.amp).replace("torch.", "") if session.amp else "off",
        "threads": torch.get_num_threads(),
        "deterministic": session.options.deterministic,
    }


def seeds(seed: int) -> dict[str, Any]:
    return {
        "seed": seed,
        "split": f"numpy default_rng([{seed}, 1]) over sorted patient ids",
        "stage": "torch, numpy and python seeded with crc32('<seed>:<stage>') at each stage start",
        "data_order": "numpy default_rng([stage seed, epoch]).permutation, full batches",
        "augmentation": f"numpy default_rng([{seed} (synthetic: {seed + 1}), epoch, image index])",
        "init": f"torch.manual_seed({seed}) before building each model",
        "bootstrap": f"numpy default_rng([{seed}, 7])",
    }


def json_bytes(doc: Any) -> bytes:
    return (json.dumps(to_json(doc), indent=2, allow_nan=False) + "\n").encode()
