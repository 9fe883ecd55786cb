"""`train-classifier`: a multi-label chest X-ray DenseNet trained with one or several strategies.

`real` (real data only), `mixed` (real + synthetic shuffled together) and `pretrain-finetune`
(supervised pretraining on the synthetic set, then fine-tuning on real data), on one
patient-level split, each evaluated on the same held-out test images (per-label AUROC and
accuracy, per-subgroup underdiagnosis and its gap, bootstrap CIs). The RoentGen-v2 experiment;
the recipe and the metrics: `workers/training/` and docs/training.md.

Inputs: `real` (a CheXpert-style CSV plus its images, a path or fsspec URL) and `synthetic`
(`{"job": <synthetic-dataset job id>}` or `{"folder": ...}`). The inputs are checked at submit
time (CSV columns, label overlap, splits), so a bad job is a 422, not a failed run.
Runs on the training queue (`medserve jobs-worker --queue training`). One shard; a per-epoch
checkpoint makes it resumable (`workers/jobs/training.py`). Artifacts: `metrics.json`,
`report.md`, `predictions/<strategy>.csv`, `models/<strategy>.pt`, `plots/*.png`,
`checkpoints/latest.ckpt`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.constants import TRAINING_QUEUE
from core.errors import InvalidInput
from workers.jobs import training
from workers.jobs.types import JobType, SubmitContext
from workers.training.inputs import validate_classifier_inputs
from workers.training.params import ClassifierParams

if TYPE_CHECKING:
    from workers.jobs.runner import JobContext


class TrainClassifierParams(training.TrainingJobParams, ClassifierParams):
    synthetic: training.SyntheticSource | None = None  # type: ignore[assignment]


class TrainClassifierJob(JobType):
    name = "train-classifier"
    Params = TrainClassifierParams
    queue = TRAINING_QUEUE

    def resolve(self, params: dict[str, Any], submit: SubmitContext) -> dict[str, Any]:
        out = training.resolve_common(self.name, params, submit)
        syn = out.get("synthetic")
        if isinstance(syn, dict):
            syn = {**syn, "folder": training.absolute(syn.get("folder"))}
            if isinstance(syn.get("job"), str):
                if syn.get("folder"):
                    raise InvalidInput("synthetic: give `job` or `folder`, not both")
                syn["folder"] = training.job_folder(
                    submit, syn["job"], "synthetic-dataset", "metadata.jsonl", "synthetic.job"
                )
            out["synthetic"] = syn
        return out

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        normalized = super().validate(params)
        syn = normalized.get("synthetic")
        if syn is not None and not syn.get("folder"):
            raise InvalidInput(
                "synthetic.job is resolved when the job is submitted through the API; "
                "here give synthetic.folder"
            )
        training.checked(validate_classifier_inputs, normalized, self.name)
        return normalized

    def plan(self, ctx: JobContext) -> list[dict[str, Any]]:
        return [{"train": list(ctx.params["strategies"])}]

    def run_shard(self, ctx: JobContext, shard: int, items: list[dict[str, Any]]) -> dict[str, Any]:
        from workers.training.classifier import train_classifier

        _, resumed = training.run(ctx, train_classifier)
        return {"resumed_from": resumed}

    def finalize(
        self, ctx: JobContext, done: list[int], plan: list[dict[str, Any]]
    ) -> dict[str, Any]:
        if not done:
            return training.stopped_summary(ctx)
        doc = training.read_metrics(ctx)
        shard = ctx.store.shards(ctx.job.id).get(0, {})
        return {
            "strategies": {s: training.headline(v["test"]) for s, v in doc["strategies"].items()},
            "comparison": doc.get("comparison", {}),
            "resumed_from": shard.get("resumed_from"),
            "metrics": "metrics.json",
            "report": "report.md",
        }
