"""What the two training job types share: inputs by job id, the library's host, resume, summary.

The training library (`workers.training`) knows nothing of jobs; `JobCallbacks` hosts it: its
progress goes to the record's `progress.detail` (SSE, `medserve jobs watch`), its stop check is
the job's cancel/takeover check, and its checkpoints and results are job artifacts. Each
checkpoint is the whole run, so one file is kept, `checkpoints/latest.ckpt`, with
`checkpoints/latest.json` saying which one it is.

A training job is one shard: a runner that dies mid-epoch leaves the shard unfinished, and the
next attempt runs it again from `checkpoints/latest.ckpt`. Writes are fenced: a runner whose
attempt is no longer the record's stops writing (checked against Redis before every
checkpoint). A stale write that slips past is still harmless, because training is
deterministic for a seed: every checkpoint of a job is a point on the same run.
Torch-free at import (the gateway imports the job types); torch is imported inside `run`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from core.errors import InvalidInput, NotFound
from workers.jobs.artifacts import ArtifactStore
from workers.jobs.types import JobParams, SubmitContext
from workers.training.callbacks import Callbacks, TrainingStopped
from workers.training.params import Strict

if TYPE_CHECKING:
    from workers.jobs.runner import JobContext

log = logging.getLogger("medserve.jobs")
CHECKPOINT = "checkpoints/latest.ckpt"
CHECKPOINT_INFO = "checkpoints/latest.json"
JOB_ID = r"^[A-Za-z0-9_-]{1,64}$"
# Fields of the job params that the library does not take (they are resolved by the job).
JOB_ONLY = ("resume_from",)


class JobRef(Strict):
    """Another job of yours whose output this job reads."""

    job: str = Field(..., pattern=JOB_ID, description="The job id (same tenant).")


class TrainingJobParams(JobParams):
    """Fields both training job types add to the library's parameters."""

    resume_from: str | None = Field(
        None,
        pattern=JOB_ID,
        description="A cancelled or failed job of the same type and parameters: continue "
        "from its last checkpoint instead of starting over.",
    )


class SyntheticSource(Strict):
    """The synthetic set: a `synthetic-dataset` job (by id) or any imagefolder with its
    `metadata.jsonl` (a folder or fsspec URL)."""

    job: str | None = Field(None, pattern=JOB_ID, description="A synthetic-dataset job id.")
    folder: str | None = Field(None, min_length=1, description="Or the dataset's folder / URL.")
    finding_map: dict[str, list[str]] | None = Field(
        None, description="Finding text -> real label names; overrides the name-matching rule."
    )

    @model_validator(mode="after")
    def _one(self) -> SyntheticSource:
        if self.job is None and self.folder is None:
            raise ValueError("give `job` (a synthetic-dataset job id) or `folder`")
        return self


def job_folder(submit: SubmitContext, job_id: str, kind: str, marker: str, field: str) -> str:
    """The artifact folder of the caller's job `job_id`, which must be a `kind` job that has
    written `marker`; `InvalidInput` (422) otherwise."""
    try:
        job = submit.job(job_id)
    except NotFound:
        raise InvalidInput(f"{field}: no job {job_id!r} of yours; give your job's id") from None
    if job.type != kind:
        raise InvalidInput(f"{field}: job {job_id} is a {job.type} job; give a {kind} job")
    if not ArtifactStore(job.artifact_uri).exists(marker):
        raise InvalidInput(
            f"{field}: job {job_id} ({job.state}) has no {marker} yet; wait until it succeeds"
        )
    return job.artifact_uri


def absolute(path: str | None) -> str | None:
    """Local paths as absolute ones (the gateway's view), so every runner reads the same file."""
    if path is None or "://" in path:
        return path
    return os.path.abspath(path)


def resolve_common(kind: str, params: dict[str, Any], submit: SubmitContext) -> dict[str, Any]:
    """Absolute real-data paths; `resume_from` checked to be a job of `kind` with a checkpoint."""
    out = dict(params)
    real = out.get("real")
    if isinstance(real, dict):
        out["real"] = {
            **real,
            **{k: absolute(real[k]) for k in ("csv", "images") if isinstance(real.get(k), str)},
        }
    if isinstance(out.get("resume_from"), str):
        job_folder(submit, out["resume_from"], kind, CHECKPOINT, "resume_from")
    return out


def library_params(params: dict[str, Any]) -> dict[str, Any]:
    """The job's params minus what only the job uses (and the synthetic set's job id)."""
    out = {k: v for k, v in params.items() if k not in JOB_ONLY}
    if isinstance(out.get("synthetic"), dict):
        out["synthetic"] = {k: v for k, v in out["synthetic"].items() if k != "job"}
    return out


def _finite(value: float | None) -> float | None:
    return round(float(value), 6) if value is not None and math.isfinite(value) else None


class JobCallbacks(Callbacks):
    """The training library's host inside a job (see the module docstring)."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.detail: dict[str, Any] = {}
        self.checkpoint: str | None = None

    def stage(self, name: str, epochs: int, steps_per_epoch: int) -> None:
        self.detail = {
            "stage": name,
            "epoch": 1,
            "epochs": epochs,
            "step": 0,
            "steps": steps_per_epoch,
            "loss": None,
            "val_auroc": None,
        }
        self.ctx.report(dict(self.detail), force=True)

    def progress(self, epoch: int, step: int, loss: float, metric: float | None) -> None:
        try:
            self.detail.update(epoch=epoch + 1, step=step, loss=_finite(loss))
            if metric is not None:
                self.detail["val_auroc"] = _finite(metric)
            self.ctx.report(dict(self.detail), force=metric is not None)
        except Exception:  # progress must never stop training
            log.warning("job %s: progress not recorded", self.ctx.job.id)

    def should_stop(self) -> bool:
        return self.ctx.should_stop()

    def save_checkpoint(self, data: bytes, name: str) -> None:
        # The report doubles as the fence: refused when another attempt holds the job.
        if self.ctx.lost.is_set() or not self.ctx.report(dict(self.detail), force=True):
            return
        self.ctx.artifacts.write_bytes(CHECKPOINT, data)
        info = {
            "name": name,
            "attempt": self.ctx.attempt,
            "bytes": len(data),
            "at": time.time(),
            **{k: self.detail.get(k) for k in ("stage", "epoch", "step")},
        }
        self.ctx.artifacts.write_text(CHECKPOINT_INFO, json.dumps(info, indent=2))
        self.checkpoint = name

    def save_artifact(self, data: bytes, name: str) -> None:
        if not self.ctx.lost.is_set():
            self.ctx.artifacts.write_bytes(name, data)


def _resume_point(ctx: JobContext) -> tuple[bytes | None, dict[str, Any] | None]:
    """This job's latest checkpoint, else `resume_from`'s; with its info."""
    stores = [ctx.artifacts]
    if ctx.params.get("resume_from"):
        source = ctx.store.get(ctx.params["resume_from"], ctx.job.tenant)
        stores.append(ArtifactStore(source.artifact_uri))
    for store in stores:
        if store.exists(CHECKPOINT):
            info = {}
            if store.exists(CHECKPOINT_INFO):
                info = json.loads(store.read_bytes(CHECKPOINT_INFO))
            return store.read_bytes(CHECKPOINT), {**info, "job": store.url.rsplit("/", 1)[-1]}
    return None, None


def run(
    ctx: JobContext, train: Callable[..., dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Train (resuming from the latest checkpoint); the metrics doc and where it resumed from.

    A cancel or takeover surfaces as the runner's own `JobCancelled` / `LeaseLost` after the
    library has handed over its last checkpoint."""
    import torch

    if ctx.settings.torch_threads:
        torch.set_num_threads(int(ctx.settings.torch_threads))
    resume, info = _resume_point(ctx)
    if info is not None:
        log.info("job %s: resuming from checkpoint %s", ctx.job.id, info.get("name"))
    host = JobCallbacks(ctx)
    try:
        doc = train(library_params(ctx.params), host, resume)
    except TrainingStopped:
        ctx.check()  # raises JobCancelled or LeaseLost: the reason should_stop() said yes
        raise
    return doc, info


def stopped_summary(ctx: JobContext) -> dict[str, Any]:
    """A cancelled training job's summary: the checkpoint it kept."""
    if not ctx.artifacts.exists(CHECKPOINT_INFO):
        return {"checkpoint": None}
    info = json.loads(ctx.artifacts.read_bytes(CHECKPOINT_INFO))
    return {"checkpoint": CHECKPOINT, "checkpoint_info": info}


def headline(test: dict[str, Any]) -> dict[str, Any]:
    """The few numbers of one arm's test metrics worth a job summary."""
    return {
        "mean_auroc": test.get("mean_auroc"),
        "mean_accuracy": test.get("mean_accuracy"),
        "underdiagnosis_gap": {
            k: v.get("gap") for k, v in (test.get("underdiagnosis") or {}).get("by", {}).items()
        },
    }


def read_metrics(ctx: JobContext) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(ctx.artifacts.read_bytes("metrics.json"))
    return doc


def checked(validate: Callable[[dict[str, Any]], Any], params: dict[str, Any], kind: str) -> None:
    """The library's submit-time input checks, with the job type named in the message."""
    try:
        validate(library_params(params))
    except InvalidInput as exc:
        raise InvalidInput(f"{kind}: {exc.message}") from None
