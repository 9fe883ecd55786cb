"""Submit-time input checks, torch-free: the gateway may import this module.

`validate_classifier_inputs` and `validate_latent_inputs` read the CSV, the synthetic
metadata and the latent manifest (no image or latent is decoded; the first few files of each
are checked to exist), split by patient and make sure validation can score a model; each
problem is an `InvalidInput` saying how to fix the job. The training entry points start from
the same `prepare_*` results, so a job never trains on inputs its submit check refused.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, TypeVar

import fsspec
import numpy as np
from pydantic import BaseModel, ValidationError

from core.errors import InvalidInput
from workers.training import splits
from workers.training.params import ClassifierParams, LatentClassifierParams, ModelOptions
from workers.training.sources import Table, check_files, read_real, read_synthetic

P = TypeVar("P", bound=BaseModel)


def parse(params: dict[str, Any] | BaseModel, model: type[P]) -> P:
    """Validated params, or `InvalidInput` naming the fields to fix."""
    if isinstance(params, model):
        return params
    try:
        return model.model_validate(params if isinstance(params, dict) else params.model_dump())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        raise InvalidInput(f"invalid training params: {problems}") from None


@dataclass
class Prepared:
    params: ClassifierParams
    real: Table
    split: np.ndarray
    synthetic: Table | None
    summary: dict[str, Any]

    def part(self, name: str) -> Table:
        return self.real.subset(splits.indices(self.split, name))


def _positives(table: Table) -> dict[str, int]:
    return {n: int(np.nansum(table.labels[:, j])) for j, n in enumerate(table.label_names)}


def check_validation(val: Table) -> None:
    """Early stopping needs a val AUROC: at least one label with both classes."""
    for j in range(val.labels.shape[1]):
        y = val.labels[:, j][~np.isnan(val.labels[:, j])]
        if 0 < y.sum() < len(y):
            return
    raise InvalidInput(
        "the validation split has no label with both positive and negative images; "
        "raise split.val_fraction or add images"
    )


def prepare_classifier(params: dict[str, Any] | ClassifierParams) -> Prepared:
    """Read and check every input (cheap: CSV, metadata, a few file existence checks)."""
    p = parse(params, ClassifierParams)
    real = read_real(p.real)
    check_files(real.paths, "real image")
    split = splits.assign(real, p.split, p.train.seed)
    prep = Prepared(p, real, split, None, {})
    check_validation(prep.part("val"))
    prep.summary["real"] = {
        "images": len(real),
        "patients": len(set(real.patient)),
        "labels": real.label_names,
        "positives": _positives(real),
        "splits": {s: int((split == s).sum()) for s in ("train", "val", "test")},
    }
    if p.synthetic is not None and set(p.strategies) - {"real"}:
        syn = read_synthetic(p.synthetic, real.label_names, p.eval.no_finding)
        check_files(syn.paths, "synthetic image")
        prep.synthetic = syn
        prep.summary["synthetic"] = {
            "images": len(syn),
            "dropped_unmapped": syn.dropped,
            "unmapped_findings": syn.extra["unmapped"],
            "positives": _positives(syn),
        }
    return prep


def validate_classifier_inputs(params: dict[str, Any] | ClassifierParams) -> dict[str, Any]:
    """Submit-time check: `InvalidInput` with how to fix it, else a summary of the inputs."""
    return prepare_classifier(params).summary


STEMS = ("full", "no-pool", "none")
MIN_FINAL_SIDE = 2


def _final_side(side: int, stem: str, transitions: int) -> int:
    if stem != "none":
        side = (side - 1) // 2 + 1  # conv 7x7, stride 2, padding 3
    if stem == "full":
        side = (side - 1) // 2 + 1  # max-pool 3x3, stride 2, padding 1
    for _ in range(transitions):
        side //= 2  # transition: average pool 2x2
    return side


def latent_stem(options: ModelOptions, side: int) -> str:
    """The least-changed DenseNet stem that leaves the last dense block at least 2x2
    positions (the rule and its reason: `workers.training.models`)."""
    blocks = 4 if options.arch == "densenet121" else len(options.block_config)
    for stem in STEMS:
        if _final_side(side, stem, blocks - 1) >= MIN_FINAL_SIDE:
            return stem
    raise InvalidInput(
        f"a {side}x{side} latent is too small for {options.arch} ({blocks} dense blocks); "
        "use fewer blocks (model.block_config) or larger images"
    )


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


def prepare_latent(params: dict[str, Any] | LatentClassifierParams) -> LatentInputs:
    """Join manifest and CSV, check shapes and split (cheap: no latent or image is read)."""
    p = parse(params, LatentClassifierParams)
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
    return prepare_latent(params).summary
