"""Bodies of `POST /v1/srrg/generate`, `POST /v1/srrg/labels` and `POST /v1/srrg/score`.

`generate` takes JSON (`image_base64`) or multipart/form-data (the file in a part named `file`,
the other fields as form fields). Limits come from the family contract, so the gateway, the
workers and the jobs refuse the same things.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from service.schemas.common import Provenance
from workers.srrg.contract import (
    MAX_BEAMS,
    MAX_LABEL_REPORTS,
    MAX_LENGTH,
    MAX_REPORT_CHARS,
    MAX_SCORE_PAIRS,
    LabelSetKey,
    Section,
)

EXAMPLE_REPORT = (
    "Lungs and Airways:\n- No focal consolidation.\n\nPleura:\n- Small left pleural effusion."
)
Report = Annotated[str, Field(max_length=MAX_REPORT_CHARS)]


class GenerateRequest(BaseModel):
    """One chest X-ray; which sections to write and how to decode them."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "image_base64": "<base64 of a PNG, JPEG or DICOM file>",
                    "sections": ["findings", "impression"],
                    "num_beams": 2,
                    "max_length": 128,
                }
            ]
        },
    )

    image_base64: str | None = Field(
        None,
        validation_alias=AliasChoices("image_base64", "image_b64"),
        description="The chest X-ray file, base64: PNG or JPEG (8- or 16-bit, grey, RGB or "
        "RGBA) or single-frame DICOM (8/16-bit, modality LUT and MONOCHROME1 handled). "
        "With multipart/form-data send the file in a part named `file` instead.",
    )
    sections: list[Section] = Field(
        ["findings", "impression"],
        min_length=1,
        max_length=2,
        description="Which sections to write: findings (organ-system headers with '- ' "
        "bullets), impression (a numbered list) or both. Multipart: a JSON list or one name.",
    )
    findings_model: str = Field(
        "srrg-findings", description="The srrg model that writes the findings section."
    )
    impression_model: str = Field(
        "srrg-impression", description="The srrg model that writes the impression section."
    )
    num_beams: int | None = Field(
        None,
        ge=1,
        le=MAX_BEAMS,
        description="Beam search width (default 2, the authors' setting; 1 is greedy and "
        "reproduces the published snippet, which passes an ignored `beam_width`).",
    )
    max_length: int | None = Field(
        None, ge=2, le=MAX_LENGTH, description="Most tokens per section (default 128, released)."
    )


class StructuredSection(Provenance):
    """One generated section: the text, its parsed structure, and the model that wrote it."""

    section: Section = Field(description="findings or impression.")
    text: str = Field(
        description="The parsed section rewritten in the released layout (findings: "
        "'Header:' lines with '- ' bullets, blank lines between sections; impression: '1. ' "
        "items). When structure_valid is false it holds only the parts that parsed."
    )
    raw_text: str = Field(description="The model's output exactly as decoded.")
    sections: dict[str, list[str]] | None = Field(
        None, description="Findings: organ-system header -> its bullets, in output order."
    )
    items: list[str] | None = Field(None, description="Impression: the numbered items.")
    structure_valid: bool = Field(description="True when the output follows the format.")
    problems: list[str] = Field(description="Where the output breaks the format, if anywhere.")
    line_breaks_restored: bool = Field(
        description="True when the decoded text had no line breaks (a word-level tokenizer "
        "drops them) and was re-split at the known headers, bullets and numbers."
    )
    parameters: dict[str, Any] = Field(description="Decoding settings (num_beams, max_length).")


class GenerateResponse(Provenance):
    """The structured report of one X-ray: machine-generated, with each section's provenance."""

    machine_generated: bool = Field(
        True, description="Always true: model output, to be reviewed by a radiologist."
    )
    text: str = Field(
        description="The report in the released format: 'Findings:' and/or 'Impression:' "
        "blocks holding the sections' `text`."
    )
    structure_valid: bool = Field(description="True when every section follows the format.")
    findings: StructuredSection | None = None
    impression: StructuredSection | None = None


class LabelsRequest(BaseModel):
    """Reports to label with one of the four SRR-BERT label sets."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"reports": [EXAMPLE_REPORT], "label_set": "leaves_with_statuses"}]
        },
    )

    reports: list[Report] = Field(
        min_length=1,
        description=f"Report texts (at most {MAX_LABEL_REPORTS} per request, each at most "
        f"{MAX_REPORT_CHARS} characters). Each is split into sentences as F1-SRR-BERT does "
        "(numbering removed, nltk Punkt); every sentence is labelled.",
    )
    label_set: LabelSetKey = Field(
        "leaves_with_statuses",
        description="leaves (55 labels), leaves_with_statuses (163), upper (25) or "
        "upper_with_statuses (73); served by srr-bert-<label set> (underscores as hyphens).",
    )
    model: str | None = Field(
        None, description="An srrg labels model to use instead of the label set's default."
    )
    probabilities: bool = Field(
        False, description="Also return each sentence's sigmoid probability for every label."
    )


class SentenceLabels(BaseModel):
    text: str = Field(description="The sentence as the splitter produced it.")
    labels: list[str] = Field(description="Its positive labels (sigmoid > 0.5).")
    probabilities: list[float] | None = Field(
        None, description="With probabilities=true: one per label, in `label_names` order."
    )


class ReportLabels(BaseModel):
    labels: list[str] = Field(description="The OR of the report's sentence labels.")
    sentences: list[SentenceLabels]


class LabelsResponse(Provenance):
    machine_generated: bool = Field(True, description="Labels are model output.")
    label_set: LabelSetKey
    label_names: list[str] | None = Field(
        None, description="With probabilities=true: the label set's names in output order."
    )
    results: list[ReportLabels] = Field(description="One per report, in request order.")


class ScoreRequest(BaseModel):
    """Reference and generated reports, one pair per index."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "references": ["1. Small left pleural effusion.\n2. No pneumothorax."],
                    "hypotheses": ["1. Small left pleural effusion."],
                }
            ]
        },
    )

    references: list[Report] = Field(
        min_length=1,
        description=f"Reference reports (at most {MAX_SCORE_PAIRS}; more: a benchmark-reports "
        "job). Each must hold text.",
    )
    hypotheses: list[Report] = Field(
        min_length=1,
        description="Generated reports, as many as references. An empty one is scored as "
        "RadEval scores it: as the single sentence '.'.",
    )
    label_set: LabelSetKey = Field(
        "leaves_with_statuses",
        description="The label set (RadEval's srrbert metric uses leaves_with_statuses).",
    )
    model: str | None = Field(None, description="An srrg labels model instead of the default.")
    per_label: bool = Field(False, description="Also return precision/recall/F1 per label.")


class SampleScore(BaseModel):
    precision: float
    recall: float
    f1: float


class LabelScore(SampleScore):
    support: int = Field(description="Reference reports that have the label.")


class ScoreResponse(Provenance):
    metric: Literal["f1_srr_bert"] = "f1_srr_bert"
    label_set: LabelSetKey
    precision: float = Field(description="Weighted-average precision (scikit-learn).")
    recall: float = Field(description="Weighted-average recall.")
    f1: float = Field(description="Weighted-average F1: F1-SRR-BERT (RadEval rounds it to 4).")
    per_sample: list[SampleScore] = Field(
        description="RadEval's per-sample scores: the mean over the labels either report has; "
        "1.0 when neither has any."
    )
    per_label: dict[str, LabelScore] | None = Field(None, description="With per_label=true.")
