"""`latent-dataset`: encode a folder or CSV of images/volumes with a MedVAE model into latents.

Each input file goes to the model worker as OIP `IMAGE` bytes (PNG, JPEG, DICOM, NIfTI, .npy:
whatever the MedVAE adapter reads) with `format=npy|safetensors`; the latent file comes back
and is written atomically as `latents/NNNNNN-<stem>.<ext>`. Each shard writes its rows of the
manifest to `.shards/manifest-NNNNN.jsonl` last; the final `manifest.jsonl` and
`manifest.csv` are merged from finished shards. A file the model refuses is recorded in the
manifest with its error instead of failing the job.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

import fsspec
import numpy as np
from pydantic import Field

from core.errors import InvalidInput, MedserveError, Overloaded, Unavailable
from workers.jobs.types import JobParams, JobType, SubmitContext

if TYPE_CHECKING:
    from workers.jobs.runner import JobContext

EXTENSIONS = (".png", ".jpg", ".jpeg", ".dcm", ".nii", ".nii.gz", ".npy")
MAX_FILES = 1_000_000


class LatentParams(JobParams):
    model: str = Field("medvae-4-1-2d", pattern=r"^medvae-[\w-]+$", description="A MedVAE model.")
    source: str = Field(
        ..., min_length=1, description="Folder (path or fsspec URL) or CSV with a `path` column."
    )
    modality: Literal["xray", "ct", "mri"] | None = Field(None, description="Default: the model's.")
    format: Literal["npy", "safetensors"] = "npy"
    latent: Literal["s1", "s2"] = "s1"
    roi_size: int | None = Field(None, ge=16, le=256, multiple_of=16)
    concurrency: int = Field(
        4, ge=1, le=64, description="Requests in flight per worker serving the model."
    )


def manifest_part(shard: int) -> str:
    return f".shards/manifest-{shard:05d}.jsonl"


def _stem(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    for ext in sorted(EXTENSIONS, key=len, reverse=True):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80] or "item"


def list_sources(source: str) -> list[str]:
    """Input files, sorted: every known image/volume file under a folder, or a CSV's `path`s."""
    fs, root = fsspec.core.url_to_fs(source)
    protocol = source.split("://", 1)[0] + "://" if "://" in source else ""
    if fs.isfile(root):
        if not root.lower().endswith(".csv"):
            raise InvalidInput("source must be a folder or a .csv file with a `path` column")
        text = fs.cat_file(root).decode()
        rows = list(csv.DictReader(io.StringIO(text)))
        if not rows or "path" not in rows[0]:
            raise InvalidInput("the source CSV needs a `path` column (one input file per row)")
        base = root.rsplit("/", 1)[0]
        paths = [r["path"] if "://" in r["path"] or r["path"].startswith("/") else
                 f"{protocol}{base}/{r['path']}" for r in rows if r.get("path")]  # fmt: skip
    elif fs.isdir(root):
        paths = sorted(f"{protocol}{p}" for p in fs.find(root) if p.lower().endswith(EXTENSIONS))
    else:
        raise InvalidInput(
            f"source {source!r} not found: give an existing folder or CSV the runner can read "
            "(an absolute path, or an fsspec URL)"
        )
    if not paths:
        raise InvalidInput("source has no image or volume files (png, jpg, dcm, nii, nii.gz, npy)")
    if len(paths) > MAX_FILES:
        raise InvalidInput(f"source lists more than {MAX_FILES} files; split it into several jobs")
    return paths


class LatentDatasetJob(JobType):
    name = "latent-dataset"
    Params = LatentParams

    def resolve(self, params: dict[str, Any], submit: SubmitContext) -> dict[str, Any]:
        """A relative local `source` as an absolute path (the gateway's view), so every runner
        reads the same folder whatever its working directory."""
        source = params.get("source")
        if isinstance(source, str) and source and "://" not in source:
            return {**params, "source": os.path.abspath(source)}
        return params

    def plan(self, ctx: JobContext) -> list[dict[str, Any]]:
        ext = ctx.params["format"]
        return [
            {"index": i, "source": path, "latent_file": f"latents/{i:06d}-{_stem(path)}.{ext}"}
            for i, path in enumerate(list_sources(ctx.params["source"]))
        ]

    def _encode(self, ctx: JobContext, item: dict[str, Any]) -> dict[str, Any]:
        params = ctx.params
        row: dict[str, Any] = {"index": item["index"], "source": item["source"]}
        try:
            with fsspec.open(item["source"], "rb") as handle:
                data = handle.read()
        except (OSError, ValueError):
            return {**row, "status": "error", "error": "input file could not be read"}
        parameters: dict[str, Any] = {"format": params["format"], "latent": params["latent"]}
        if params.get("modality"):
            parameters["modality"] = params["modality"]
        if params.get("roi_size"):
            parameters["roi_size"] = params["roi_size"]
        try:
            answer = ctx.models.infer(
                params["model"], {"IMAGE": np.array([data], dtype=np.object_)}, parameters
            )
        except (Overloaded, Unavailable):
            raise
        except MedserveError as exc:  # this file is refused; keep going with the others
            return {**row, "status": "error", "error": exc.message}
        ctx.artifacts.write_bytes(item["latent_file"], bytes(answer.outputs["FILE"].reshape(-1)[0]))
        info = answer.parameters
        return {
            **row,
            "status": "ok",
            "latent_file": item["latent_file"],
            "shape": json.loads(info["shape"]) if isinstance(info.get("shape"), str) else None,
            "model": info.get("model", params["model"]),
            "version": info.get("version"),
            "weights": info.get("weights"),
            "weights_digest": info.get("weights_digest"),
            "modality": info.get("modality"),
            "latent": params["latent"],
        }

    def run_shard(self, ctx: JobContext, shard: int, items: list[dict[str, Any]]) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        per_replica = int(ctx.params["concurrency"])  # in flight on each worker of the model
        with ThreadPoolExecutor(per_replica * ctx.models.replicas(ctx.params["model"])) as pool:
            for row in pool.map(lambda item: self._encode(ctx, item), items):
                rows.append(row)
                ctx.item_done()
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        ctx.artifacts.write_text(manifest_part(shard), text)
        return {"errors": sum(r["status"] != "ok" for r in rows)}

    def finalize(
        self, ctx: JobContext, done: list[int], plan: list[dict[str, Any]]
    ) -> dict[str, Any]:
        rows = []
        for shard in sorted(done):
            part = ctx.artifacts.read_bytes(manifest_part(shard)).decode()
            rows.extend(json.loads(line) for line in part.splitlines() if line.strip())
        ctx.artifacts.write_text("manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        fields = ["index", "source", "status", "latent_file", "shape", "model", "weights_digest",
                  "modality", "latent", "error"]  # fmt: skip
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "shape": json.dumps(r.get("shape")) if r.get("shape") else ""})
        ctx.artifacts.write_text("manifest.csv", out.getvalue())
        ok = sum(r["status"] == "ok" for r in rows)
        return {"encoded": ok, "errors": len(rows) - ok, "planned": len(plan)}
