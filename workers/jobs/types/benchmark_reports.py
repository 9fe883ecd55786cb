"""`benchmark-reports`: score generated radiology reports against references.

Input: a CSV of (reference, hypothesis) pairs, or X-rays with reference reports (a CSV with an
image column, or a folder of images with same-stem `.txt` references) whose hypotheses the job
generates with an SRRG report model. Metrics: GREEN (the GREEN judge on a platform worker at
batch priority; `green: auto` uses it when a worker serves it), F1-SRR-BERT (RadEval's
`srrbert`, `workers.srrg.f1`, labelled with an SRR-BERT model), BLEU and ROUGE (RadEval's BLEU,
sacrebleu, rouge-score) and BERTScore when an encoder folder is given.

SRRG generation and SRR-BERT labelling run on a platform worker (`worker`: the SRRG family's
OIP contract: `IMAGE` -> `text`; `text` with `split=false` -> `labels`) or in the job runner on
a model it loads from a folder or its model store; both are callables to the job. Each shard
stores its hypotheses, GREEN answers and the labels of its sentences, so `finalize` computes
every corpus metric without a model call.
Artifacts: `metrics.json`, `report.md`, `metrics.png`, `samples.parquet`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from core.errors import InvalidInput
from workers.jobs.benchmarking import read_parts, write_part
from workers.jobs.types import JobParams, JobType

if TYPE_CHECKING:
    from workers.jobs.runner import JobContext

LABEL_SET = Literal["leaves", "upper", "leaves_with_statuses", "upper_with_statuses"]
SETUP = ".shards/setup.json"


class ModelSpec(JobParams):
    """Which model: one served by a platform worker (called at batch priority, SRRG's OIP
    contract), or one the runner loads itself (a folder, or a model of the runner's store)."""

    worker: str | None = Field(None, min_length=1, description="A model a worker serves.")
    model_dir: str | None = Field(None, min_length=1, description="Folder in the HF layout.")
    model: str | None = Field(None, min_length=1, description="A model of the runner's store.")
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?)$", description="In the runner.")

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if sum(v is not None for v in (self.worker, self.model_dir, self.model)) != 1:
            raise ValueError("give exactly one of worker, model_dir and model")
        return self


class SRRGSpec(ModelSpec):
    section: Literal["findings", "impression"] = "findings"
    num_beams: int = Field(2, ge=1, le=8)
    max_length: int = Field(128, ge=2, le=512)
    batch_size: int = Field(4, ge=1, le=64)


class SRRBertSpec(ModelSpec):
    label_set: LABEL_SET = Field("leaves_with_statuses", description="RadEval's srrbert set.")
    tokenizer_dir: str | None = Field(None, description="Default: the model folder's vocab.")
    batch_size: int = Field(4, ge=1, le=256, description="RadEval's is 4.")


class BertScoreSpec(JobParams):
    model_dir: str = Field(..., min_length=1, description="A BERT-like encoder folder.")
    num_layers: int = Field(5, ge=0, le=48, description="RadEval: distilbert, 5 layers.")
    baseline_path: str | None = Field(None, description="bert-score rescale baseline TSV.")
    batch_size: int = Field(64, ge=1, le=1024)


class ReportsParams(JobParams):
    source: str = Field(
        ..., min_length=1, description="CSV (path or fsspec URL), or a folder of X-rays + .txt."
    )
    reference_column: str = "reference"
    hypothesis_column: str = "hypothesis"
    image_column: str = "image"
    group_column: str | None = Field(None, description="Metrics per value of this column too.")
    srrg: SRRGSpec | None = Field(None, description="Generate the hypotheses from the images.")
    srrbert: SRRBertSpec | None = Field(None, description="F1-SRR-BERT with this labeller.")
    green: Literal["auto", "required", "off"] = "auto"
    green_model: str = Field("green-radllama2-7b", min_length=1)
    lexical: bool = Field(True, description="BLEU (RadEval, sacrebleu) and ROUGE-1/2/L.")
    bertscore: BertScoreSpec | None = None
    limit: int | None = Field(None, ge=1)
    concurrency: int = Field(4, ge=1, le=64, description="GREEN requests in flight.")


def _green_setup(ctx: JobContext) -> dict[str, Any]:
    from core.errors import ModelNotFound

    p = ctx.params
    if p["green"] == "off":
        return {"green": False, "green_reason": "off"}
    try:
        ctx.models.url_for(p["green_model"])
    except ModelNotFound as exc:
        if p["green"] == "required":
            raise
        return {"green": False, "green_reason": exc.message}
    return {"green": True, "green_reason": None}


class ReportsBenchJob(JobType):
    name = "benchmark-reports"
    Params = ReportsParams

    def plan(self, ctx: JobContext) -> list[dict[str, Any]]:
        import json

        from workers.jobs.types.benchmark_reports_run import read_samples

        items = read_samples(ctx.params)
        ctx.artifacts.write_text(SETUP, json.dumps(_green_setup(ctx)))
        return items

    def run_shard(self, ctx: JobContext, shard: int, items: list[dict[str, Any]]) -> dict[str, Any]:
        import json

        from workers.jobs.types.benchmark_reports_run import score_shard

        setup = json.loads(ctx.artifacts.read_bytes(SETUP))
        doc = score_shard(ctx, items, setup)
        write_part(ctx, "reports", shard, doc)
        return {"failed": sum(1 for r in doc["records"] if r.get("error"))}

    def finalize(
        self, ctx: JobContext, done: list[int], plan: list[dict[str, Any]]
    ) -> dict[str, Any]:
        import json

        from workers.jobs.types.benchmark_reports_outputs import write_outputs

        if not plan:
            raise InvalidInput("nothing to score")
        setup = json.loads(ctx.artifacts.read_bytes(SETUP))
        return write_outputs(ctx, plan, read_parts(ctx, "reports", done), setup)
