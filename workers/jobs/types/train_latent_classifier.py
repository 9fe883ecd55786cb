"""`train-latent-classifier`: the same DenseNet on MedVAE latents and on the images they encode.

The MedVAE experiment: a `latent-dataset` job's latents (`{"job": <id>}` or a folder) joined
by source path to the labelled CSV of the encoded images; both arms train on one patient-level
split with the same seed, optimiser and schedule, and `metrics.json` / `report.md` give both
metric sets side by side with each arm's training throughput (images per second of the whole
training loop, measured in this job). Runs on the training queue; one resumable shard, like
`train-classifier`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from core.constants import TRAINING_QUEUE
from core.errors import InvalidInput
from workers.jobs import training
from workers.jobs.types import JobType, SubmitContext
from workers.training.inputs import validate_latent_inputs
from workers.training.params import LatentClassifierParams

if TYPE_CHECKING:
    from workers.jobs.runner import JobContext


class TrainLatentParams(training.TrainingJobParams, LatentClassifierParams):
    latents: str | training.JobRef = Field(  # type: ignore[assignment]
        ..., description='A latent-dataset job\'s output folder, or {"job": <its id>}.'
    )


class TrainLatentJob(JobType):
    name = "train-latent-classifier"
    Params = TrainLatentParams
    queue = TRAINING_QUEUE

    def resolve(self, params: dict[str, Any], submit: SubmitContext) -> dict[str, Any]:
        out = training.resolve_common(self.name, params, submit)
        latents = out.get("latents")
        if isinstance(latents, dict) and isinstance(latents.get("job"), str) and len(latents) == 1:
            out["latents"] = training.job_folder(
                submit, latents["job"], "latent-dataset", "manifest.jsonl", "latents.job"
            )
        elif isinstance(latents, str):
            out["latents"] = training.absolute(latents)
        return out

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        normalized = super().validate(params)
        if not isinstance(normalized.get("latents"), str):
            raise InvalidInput(
                "latents.job is resolved when the job is submitted through the API; "
                "here give the latents folder"
            )
        training.checked(validate_latent_inputs, normalized, self.name)
        return normalized

    def plan(self, ctx: JobContext) -> list[dict[str, Any]]:
        return [{"train": ["latent", "image"] if ctx.params["compare_images"] else ["latent"]}]

    def run_shard(self, ctx: JobContext, shard: int, items: list[dict[str, Any]]) -> dict[str, Any]:
        from workers.training.latent import train_latent_classifier

        _, resumed = training.run(ctx, train_latent_classifier)
        return {"resumed_from": resumed}

    def finalize(
        self, ctx: JobContext, done: list[int], plan: list[dict[str, Any]]
    ) -> dict[str, Any]:
        if not done:
            return training.stopped_summary(ctx)
        doc = training.read_metrics(ctx)
        speed = doc.get("throughput", {})
        shard = ctx.store.shards(ctx.job.id).get(0, {})
        return {
            "arms": {a: training.headline(v["test"]) for a, v in doc["arms"].items()},
            "loop_images_per_s": {
                a: v.get("loop_images_per_s") for a, v in speed.items() if isinstance(v, dict)
            },
            "loop_speedup": speed.get("loop_speedup"),
            "resumed_from": shard.get("resumed_from"),
            "metrics": "metrics.json",
            "report": "report.md",
        }
