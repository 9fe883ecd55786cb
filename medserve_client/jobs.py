"""The job routes, and one submit method per job type with that type's parameters.

Unset parameters are left out, so the server's defaults apply. Local paths (latent-dataset
`source`, training `real.csv`/`real.images`, `latents`, `synthetic.folder`) are made absolute
here, on the caller's side. Adding a job type: one `submit_<type>` method with
`job_type=` set; the drift test compares its parameters with the type's `Params`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from medserve_client.resources import Artifacts, Job, JobPage
from medserve_client.routes import Request, body, local_path, route

PathLike = str | os.PathLike[str]
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


# Parameters that name local files, per job type (dotted: inside a nested object).
PATH_FIELDS: dict[str, tuple[str, ...]] = {
    "latent-dataset": ("source",),
    "train-classifier": ("real.csv", "real.images", "synthetic.folder"),
    "train-latent-classifier": ("real.csv", "real.images", "latents"),
}


def absolute_paths(job_type: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` with the type's local paths made absolute on the caller's side."""
    out = dict(params)
    for dotted in PATH_FIELDS.get(job_type, ()):
        head, _, leaf = dotted.rpartition(".")
        node = out if not head else out.get(head)
        if isinstance(node, Mapping) and isinstance(node.get(leaf), str | os.PathLike):
            fixed = {**node, leaf: local_path(node[leaf])}
            if head:
                out[head] = fixed
            else:
                out = fixed
    return out


def submission(job_type: str, params: Mapping[str, Any], key: str | None) -> Request:
    """POST /v1/jobs for `job_type`; the idempotency key travels as `Idempotency-Key`."""
    headers = {"Idempotency-Key": key} if key else None
    body = {"type": job_type, "params": absolute_paths(job_type, params)}
    return Request(json=body, headers=headers)


class JobsApi:
    """Submit, list, follow, cancel jobs and read their artifacts."""

    @route("POST", "/v1/jobs", parse=Job.from_json)
    def submit_job(
        self, type: str, params: Mapping[str, Any] | None = None, *,
        idempotency_key: str | None = None,
    ) -> Request:  # fmt: skip
        """Queue a job of any type with raw `params`; the same `idempotency_key` (per tenant)
        returns the same job."""
        return submission(type, params or {}, idempotency_key)

    @route("GET", "/v1/jobs", parse=JobPage.from_json)
    def list_jobs(
        self, state: JobState | None = None, type: str | None = None,
        offset: int | None = None, limit: int | None = None,
    ) -> Request:  # fmt: skip
        """One page of your jobs, newest first (`iter_jobs` walks every page)."""
        return Request(query={"state": state, "type": type, "offset": offset, "limit": limit})

    @route("GET", "/v1/jobs/{job_id}", parse=Job.from_json)
    def get_job(self, job_id: str) -> Request:
        return Request(path_params={"job_id": job_id})

    @route("POST", "/v1/jobs/{job_id}/cancel", parse=Job.from_json)
    def cancel_job(self, job_id: str) -> Request:
        """Stop a queued or running job; finished shards are kept."""
        return Request(path_params={"job_id": job_id})

    @route("GET", "/v1/jobs/{job_id}/artifacts", parse=Artifacts.from_json)
    def list_artifacts(self, job_id: str) -> Request:
        """The job's output files so far (finished shards included while it runs)."""
        return Request(path_params={"job_id": job_id})

    @route("GET", "/v1/jobs/{job_id}/artifacts/{path}", parse=bytes, content=True)
    def read_artifact(self, job_id: str, path: str) -> Request:
        """One artifact's bytes (`download_artifacts` streams them to files)."""
        return Request(path_params={"job_id": job_id, "path": path})

    @route("POST", "/v1/jobs", parse=Job.from_json, job_type="sleep")
    def submit_sleep(
        self, items: int | None = None, item_ms: float | None = None,
        fail_at: int | None = None, *, idempotency_key: str | None = None,
    ) -> Request:  # fmt: skip
        """A model-free job of `items` steps of `item_ms` each (for trying the job API)."""
        return submission("sleep", body(items=items, item_ms=item_ms, fail_at=fail_at),
                          idempotency_key)  # fmt: skip

    @route("POST", "/v1/jobs", parse=Job.from_json, job_type="synthetic-dataset")
    def submit_synthetic_dataset(
        self,
        findings: Sequence[str] | None = None,
        *,
        sexes: Sequence[str] | None = None,
        age_bins: Sequence[Sequence[int]] | None = None,
        races: Sequence[str] | None = None,
        images_per_cell: int | None = None,
        total_images: int | None = None,
        marginals: Mapping[str, Mapping[str, float]] | None = None,
        seed: int | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        height: int | None = None,
        width: int | None = None,
        concurrency: int | None = None,
        model: str | None = None,
        idempotency_key: str | None = None,
    ) -> Request:
        """A demographically balanced RoentGen-v2 campaign (an imagefolder of labelled PNGs)."""
        params = body(
            findings=_list(findings), sexes=_list(sexes), races=_list(races),
            age_bins=[list(b) for b in age_bins] if age_bins is not None else None,
            images_per_cell=images_per_cell, total_images=total_images,
            marginals=marginals, seed=seed, steps=steps, guidance_scale=guidance_scale,
            height=height, width=width, concurrency=concurrency, model=model,
        )  # fmt: skip
        return submission("synthetic-dataset", params, idempotency_key)

    @route("POST", "/v1/jobs", parse=Job.from_json, job_type="latent-dataset")
    def submit_latent_dataset(
        self,
        source: PathLike,
        *,
        model: str | None = None,
        modality: Literal["xray", "ct", "mri"] | None = None,
        format: Literal["npy", "safetensors"] | None = None,
        latent: Literal["s1", "s2"] | None = None,
        roi_size: int | None = None,
        concurrency: int | None = None,
        idempotency_key: str | None = None,
    ) -> Request:
        """MedVAE latents for every image under `source` (a folder, a CSV with a `path`
        column, or an fsspec URL); a local path is made absolute here."""
        params = body(source=os.fspath(source), model=model, modality=modality, format=format,
                      latent=latent, roi_size=roi_size, concurrency=concurrency)  # fmt: skip
        return submission("latent-dataset", params, idempotency_key)

    @route("POST", "/v1/jobs", parse=Job.from_json, job_type="train-classifier")
    def submit_train_classifier(
        self,
        real: Mapping[str, Any],
        *,
        synthetic: Mapping[str, Any] | None = None,
        strategies: Sequence[str] | None = None,
        split: Mapping[str, Any] | None = None,
        model: Mapping[str, Any] | None = None,
        train: Mapping[str, Any] | None = None,
        eval: Mapping[str, Any] | None = None,
        resume_from: str | None = None,
        idempotency_key: str | None = None,
    ) -> Request:
        """A chest X-ray classifier on `real` (`{"csv": ..., "images": ...}`) and optionally a
        `synthetic` set (`{"job": id}` or `{"folder": ...}`); see docs/training.md."""
        params = body(
            real=_dict(real), synthetic=_dict(synthetic),
            strategies=_list(strategies), split=_dict(split), model=_dict(model),
            train=_dict(train), eval=_dict(eval), resume_from=resume_from,
        )  # fmt: skip
        return submission("train-classifier", params, idempotency_key)

    @route("POST", "/v1/jobs", parse=Job.from_json, job_type="train-latent-classifier")
    def submit_train_latent_classifier(
        self,
        real: Mapping[str, Any],
        latents: PathLike | Mapping[str, str],
        *,
        factor: int | None = None,
        compare_images: bool | None = None,
        split: Mapping[str, Any] | None = None,
        model: Mapping[str, Any] | None = None,
        train: Mapping[str, Any] | None = None,
        eval: Mapping[str, Any] | None = None,
        resume_from: str | None = None,
        idempotency_key: str | None = None,
    ) -> Request:
        """The same classifier on MedVAE latents (`{"job": <latent-dataset id>}` or a folder)
        and on the images they encode; see docs/training.md."""
        params = body(
            real=_dict(real), latents=_latents(latents), factor=factor,
            compare_images=compare_images, split=_dict(split), model=_dict(model),
            train=_dict(train), eval=_dict(eval), resume_from=resume_from,
        )  # fmt: skip
        return submission("train-latent-classifier", params, idempotency_key)


def _list(value: Sequence[Any] | None) -> list[Any] | None:
    return None if value is None else list(value)


def _dict(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


def _latents(value: PathLike | Mapping[str, str]) -> Any:
    return dict(value) if isinstance(value, Mapping) else os.fspath(value)
