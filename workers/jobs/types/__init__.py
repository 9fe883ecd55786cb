"""Job types: what a job does, split into shards that can each be redone safely.

A job type validates its parameters (a pydantic model; the gateway calls this, so modules
here import nothing heavy at import time), plans a deterministic list of items, runs one
shard of items (writing its output atomically, so redoing an unfinished shard is harmless)
and finalises from the finished shards. The runner owns claiming, fencing and progress.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from core.constants import JOBS_QUEUE
from core.errors import InvalidInput
from core.validation import describe

if TYPE_CHECKING:
    from workers.jobs.records import JobRecord
    from workers.jobs.runner import JobContext

# Job type name -> "module:Class"; adding a type is one line here.
JOB_TYPES: dict[str, str] = {
    "sleep": "workers.jobs.types.sleep:SleepJob",
    "synthetic-dataset": "workers.jobs.types.synthetic_dataset:SyntheticDatasetJob",
    "latent-dataset": "workers.jobs.types.latent_dataset:LatentDatasetJob",
    "train-classifier": "workers.jobs.types.train_classifier:TrainClassifierJob",
    "train-latent-classifier": "workers.jobs.types.train_latent_classifier:TrainLatentJob",
    "srrg-reports": "workers.jobs.types.srrg_reports:SRRGReportsJob",
    "merlin-embeddings": "workers.jobs.types.merlin_embeddings:MerlinEmbeddingsJob",
    "benchmark-medval": "workers.jobs.types.benchmark_medval:MedVALBenchJob",
    "benchmark-reports": "workers.jobs.types.benchmark_reports:ReportsBenchJob",
    "benchmark-smmile": "workers.jobs.types.benchmark_smmile:SmmileBenchJob",
    "synthetic-qc": "workers.jobs.types.synthetic_qc:SyntheticQCJob",
}


class JobParams(BaseModel):
    """Base of every job type's parameters: an unknown (misspelt) field is refused, never
    dropped, so a typo cannot start an expensive default job."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class SubmitContext:
    """What a job type may look up at submit time: the caller's tenant and its jobs by id
    (`NotFound` for a missing job or another tenant's)."""

    tenant: str
    job: Callable[[str], JobRecord]


class JobType(ABC):
    """Base class of a job type."""

    name: ClassVar[str]
    Params: ClassVar[type[JobParams]]
    models: ClassVar[tuple[str, ...]] = ()
    queue: ClassVar[str] = JOBS_QUEUE  # the Celery queue its runners consume

    def resolve(self, params: dict[str, Any], submit: SubmitContext) -> dict[str, Any]:
        """Before `validate`: turn references to the tenant's other jobs into what the job
        reads (e.g. a job id into its artifact folder). Default: nothing to resolve."""
        return params

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Normalised parameters, or `InvalidInput` saying which field to fix and how."""
        try:
            model = self.Params.model_validate(params)
        except ValidationError as exc:
            problems = describe(exc, self.Params, what="param")
            raise InvalidInput(f"invalid params for job type {self.name!r}: {problems}") from None
        return model.model_dump(mode="json")

    @abstractmethod
    def plan(self, ctx: JobContext) -> list[dict[str, Any]]:
        """The job's items, in a deterministic order (JSON-able); stored once, reused on resume."""

    @abstractmethod
    def run_shard(self, ctx: JobContext, shard: int, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Do one shard's items and write its output atomically; return a small JSON summary.

        Call `ctx.item_done()` after each item: it reports progress and raises when the job
        was cancelled or taken over, so a shard stops between items.
        """

    @abstractmethod
    def finalize(
        self, ctx: JobContext, done: list[int], plan: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Build the job's final outputs from the finished shards `done`; return the summary."""


def queue_for(name: str) -> str:
    """The queue a job of type `name` goes to (an unknown type: the default queue, where a
    runner fails it with a clear error)."""
    try:
        return job_type(name).queue
    except InvalidInput:
        return JOBS_QUEUE


def job_type(name: str) -> JobType:
    """The job type called `name`, or `InvalidInput` listing the known ones."""
    target = JOB_TYPES.get(name)
    if target is None:
        raise InvalidInput(f"unknown job type {name!r}; use one of: {', '.join(sorted(JOB_TYPES))}")
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    instance: JobType = cls()
    return instance
