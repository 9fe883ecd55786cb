"""The job routes: submit, list, read, cancel, artifacts (the event stream is in `client`).

Local paths in a job's parameters (`PATH_FIELDS`) are made absolute here, on the caller's
side, so a job reads the folder the caller meant, not one relative to a runner.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from medserve_client.resources import Artifacts, Job, JobPage
from medserve_client.routes import Request, local_path, route

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


# Parameters that name local files, per job type (dotted: inside a nested object).
PATH_FIELDS: dict[str, tuple[str, ...]] = {
    "latent-dataset": ("source",),
    "train-classifier": ("real.csv", "real.images", "synthetic.folder"),
    "train-latent-classifier": ("real.csv", "real.images", "latents"),
    "srrg-reports": ("source",),
    "merlin-embeddings": ("source",),
    "benchmark-medval": ("source",),
    "benchmark-reports": ("source",),
    "benchmark-smmile": ("source",),
    "synthetic-qc": ("source",),
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
