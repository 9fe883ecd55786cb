"""SRRG's contract (torch-free): what the gateway, jobs and workers agree on.

Three kinds of model (the manifest's `adapter.kind`):

- `report` (chexpert-plus-srrg_findings / _impression) and `remote_report` (CheXagent-2-3b-srrg):
  input `IMAGE` BYTES [n], one chest X-ray file per row (PNG, JPEG, single-frame DICOM);
  outputs per row `text` (the decoded model output), `report` (the parsed report rewritten in
  the released layout), `structure` (JSON: sections or items, `structure_valid`, `problems`,
  `line_breaks_restored`) and `structure_valid` BOOL. Parameters `num_beams`, `max_length`
  (`max_new_tokens` for remote models).
- `labels` (SRR-BERT): input `text` BYTES [n], one report (or, with `split=false`, one sentence)
  per row. The worker splits each report into sentences exactly as F1-SRR-BERT does
  (`workers.srrg.sentences`), batches the sentences across requests, and returns per sentence
  `sentence` BYTES [S], `report_index` INT32 [S] (its input row), `labels` UINT8 [S,K] and
  `probabilities` FP32 [S,K], and per report `report_labels` UINT8 [n,K] (the OR of its
  sentences). Column k is label k of the model's label set (`label_maps.label_names`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workers.runtime.params import OIPParams
from workers.runtime.spec import TensorSpec

Kind = Literal["report", "remote_report", "labels"]
Section = Literal["findings", "impression"]
LabelSetKey = Literal["leaves", "upper", "leaves_with_statuses", "upper_with_statuses"]
SECTIONS: tuple[Section, ...] = ("findings", "impression")

# Default served models (their manifests are in model_store/manifests/).
DEFAULT_REPORT_MODELS: dict[str, str] = {
    "findings": "srrg-findings",
    "impression": "srrg-impression",
}
LABEL_MODELS: dict[str, str] = {
    "leaves": "srr-bert-leaves",
    "upper": "srr-bert-upper",
    "leaves_with_statuses": "srr-bert-leaves-with-statuses",
    "upper_with_statuses": "srr-bert-upper-with-statuses",
}
METRIC_LABEL_SET = "leaves_with_statuses"  # RadEval's `srrbert` metric scores with this set

# Generation limits (the released settings are num_beams 2, max_length 128; see model.py).
MAX_BEAMS = 8
MAX_LENGTH = 512
MAX_NEW_TOKENS = 1024

# Synchronous limits. Larger sets go to a job: `srrg-reports` for images, `benchmark-reports`
# for scoring; both call the same workers at batch priority.
MAX_REPORT_CHARS = 20_000  # one report (a long structured findings section is ~2 000)
MAX_LABEL_REPORTS = 256  # POST /v1/srrg/labels
MAX_SCORE_PAIRS = 256  # POST /v1/srrg/score: reference/hypothesis pairs
MAX_WORKER_TEXTS = 2 * MAX_SCORE_PAIRS  # texts per request to a labels worker
MAX_SENTENCES = 8192  # sentences per request to a labels worker, after splitting
JOB_HINT_SCORE = (
    "submit a `benchmark-reports` job (POST /v1/jobs) for larger sets, or split the request"
)
JOB_HINT_IMAGES = "submit an `srrg-reports` job (POST /v1/jobs) for a folder of X-rays"
THRESHOLD = 0.5  # sigmoid(logit) > 0.5 is a positive label, as RadEval

REPORT_INPUTS = [TensorSpec("IMAGE", "BYTES", (-1,))]
REPORT_OUTPUTS = [
    TensorSpec("text", "BYTES", (-1,)),
    TensorSpec("report", "BYTES", (-1,)),
    TensorSpec("structure", "BYTES", (-1,)),
    TensorSpec("structure_valid", "BOOL", (-1,)),
]
LABEL_INPUTS = [TensorSpec("text", "BYTES", (-1,))]
LABEL_OUTPUTS = [
    TensorSpec("sentence", "BYTES", (-1,)),
    TensorSpec("report_index", "INT32", (-1,)),
    TensorSpec("labels", "UINT8", (-1, -1)),
    TensorSpec("probabilities", "FP32", (-1, -1)),
    TensorSpec("report_labels", "UINT8", (-1, -1)),
]


class ReportParams(OIPParams):
    """Decoding settings of the chexpert-plus-srrg report models."""

    num_beams: int = Field(
        2, ge=1, le=MAX_BEAMS, description="Beams (2: the authors' setting; 1: greedy)."
    )
    max_length: int = Field(
        128, ge=2, le=MAX_LENGTH, description="Most tokens of a report (128 released)."
    )


class RemoteParams(OIPParams):
    """Decoding settings of CheXagent-2-3b-srrg (greedy, as published)."""

    max_new_tokens: int = Field(512, ge=1, le=MAX_NEW_TOKENS)


class LabelParams(OIPParams):
    """SRR-BERT request settings."""

    split: bool = Field(
        True,
        description="true: each text is a report, split into sentences as F1-SRR-BERT does; "
        "false: each text is one sentence, labelled as sent.",
    )


class Params(OIPParams):
    """Any kind's parameters: what a manifest's `defaults` block may set."""

    num_beams: int | None = Field(None, ge=1, le=MAX_BEAMS)
    max_length: int | None = Field(None, ge=2, le=MAX_LENGTH)
    max_new_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS)
    split: bool | None = None


class Options(BaseModel):
    """The manifest's `adapter` block."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    section: Section | None = Field(None, description="report and remote_report models.")
    label_set: LabelSetKey | None = Field(None, description="labels models.")
    # {relative .py path: sha256} for remote code; empty refuses to load (workers/srrg/remote.py)
    remote_code_sha256: dict[str, str] = Field(default_factory=dict)
    # Folder (relative to the model folder) of a separately pulled tokenizer; default: the model's
    tokenizer_subdir: str | None = None
    dtype_gpu: Literal["float32", "float16", "bfloat16"] = "float32"

    @model_validator(mode="after")
    def _complete(self) -> Options:
        if self.kind == "labels" and self.label_set is None:
            raise ValueError("a labels model needs label_set (leaves, upper, ..._with_statuses)")
        if self.kind != "labels" and self.section is None:
            raise ValueError("a report model needs section (findings or impression)")
        if self.remote_code_sha256 and self.kind != "remote_report":
            raise ValueError("remote_code_sha256 is for remote_report models only")
        return self


class Tiny(BaseModel):
    """The manifest's `tiny` block: the random same-architecture build for tests."""

    model_config = ConfigDict(extra="forbid")

    encoder: Literal["swinv2", "vit"] = "swinv2"
    hidden_size: int = Field(32, ge=8, multiple_of=2)
    layers: int = Field(1, ge=1, le=12)
    image_size: int = Field(64, ge=32, le=384)
    cross_attention_gain: float = Field(6.0, gt=0, description="So a tiny model sees the image.")
    classifier_std: float = Field(3.0, gt=0)
    full_vocab_size: int | None = Field(None, ge=64)
