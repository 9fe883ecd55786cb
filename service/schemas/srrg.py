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
# A 64x64 synthetic chest phantom (PNG), so the Swagger example runs as it is.
EXAMPLE_IMAGE = (
    "iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAAAAACPAi4CAAAE9ElEQVR42nVXW5JjOwiThHv/y7qLikH3A+xz0jOT"
    "6uqkbCyLlwH+h/4YcP+DAQJgf529s06Ar731ff5gAKBBg3hQPbI0TZhvgHN+IGDCbIjePCT4G+EwmPOG+54jefaM"
    "73X6SwWPlH0kXyQBPwg0Odu9/7bB+QAAQV4Sb+AB/baBz/X1ANCCyTGAC2edpF5qXAZ9/iAQ5L1toOFzvhrhMhjD"
    "u1wN0YItjRc3gKQIlUDANK8bbdhVjdCCFtXQ5QdYFiBzog3rEqgGqLJNiJYFgoarucEkLQB0aSislwWqKiubQckW"
    "QB5mNcwUBgh5KLyNWJWZVWWTlMK2CAxy2SZlB0Da140ngFxVmZnpAiiFAzBpuzIrqwyIEW3idjf9GLHP78yySckB"
    "WOQwy2am4yP6nQs+CHtnpk0qbMAWUFW5c4DDBlSUfUO5XTj37J1ZgFQdeaZduXfurAJUZVJkye3K5aOBqzL3/mSW"
    "yWiAZrD33jvTpqpASuUaHdZLg8y9P3vvvgkgEQYqDzCgZZCS6uiwXk5shE9W3wS2CpV7708zUxlSRpV9GHSmulzZ"
    "krtMxU/ng+lh1sALlCLDpQ7h9eWE3J/PZ5ehBYgiAOQFBmVQ0dH2pwqt62enKQPSJkFX7gPMMBSrg6LdtM6LVa7K"
    "vfc+AAxJPCqMamVG7DVJ65vOJ2Na2zTCVESKoHN02AmWFSsntXzT+aTjSKZpSLEyihz/7r3TLER0ULYGk862O+da"
    "NM2CIrNSpCvHOmWaQ6C6CADLvhQmG3OboczKh8HkKaGTV0PA6/tJbYwRrHKRdzXTpLLq9fjeOBiYmreDUNV5i12H"
    "nZVx3qZz7ilt91Vp/cpDtFf7zmKH0LkegH5Xpg7KVy16qt6E3xz3NwDwrvNdhqbSXjN/1XjgHwDTQnDqY5fD+Xr1"
    "FfezXud46pHOz7vZJc23Xv3Zocw6JclFUpQeRFEkIWlWT91sgFOyKUkKkxHSUAHVZaJgxkBc2sOgL6coRZTNiIiQ"
    "KNGmFBEN0KujJACs6RSafhxBRYSiE9qKUEQUB7jZjZnXEMDQj5WdMisiFBLtyIhYhZz1VmNamNVNTOsQESsTMmKt"
    "EW0GK6tAMFYj81JY10+HQFGmGiBCNFyxsszwAIwhb2kj0W6LtTLdAD/nLtO1Kg1WA6zVhuw4e7yg1qDAMLR+flas"
    "UAAI1yqAhQZ+m/HEQYdQxKq+SfEwALxcgMps4OhwmjjojpGiIlaVWzDi56oA2wbzBSyKfe9bBUWsAncBDbAiNBUO"
    "kArQ450vFaanqWWDKpMRa0UsCSBhA5IfZi8V6GagkqLsuUmxYq0QT3NMRTOb83oYEDhdVdmUukOJWCEJqEm07lBe"
    "wQzyBpK7s4xuJX3yQs2AD4AGl+9AGh3sMECeLk0dsnYD3C4trhsbgCcbpwXU7RM7Z+ACmJw+UbpOIE82HkcaYPZX"
    "J6c4BiKfTlWvOLyhDLA7a/L0yv2cgJ5sVY2tn3fteKFFVFRPGqet7xaFMFikhxklsZsX3nQeVwpgHYD7bBkyi8+8"
    "0LnMZ+AYClAJ5p1Y7rs1BeuZWKjzoH3VBUClZ2aCnqGHp1gdhF9GvGOgvqc2cgZYz4xyy0fH0Xte6Cn3GTafqWuG"
    "vzP2/b0y0TgBdQYJ4l3bjDOqjv0u9FPajhqHAe413+uDzO/i2lc8knz9vQfxmf1f8///dH8X4eD7R8QAAAAASUVO"
    "RK5CYII="
)
Report = Annotated[str, Field(max_length=MAX_REPORT_CHARS)]


class GenerateRequest(BaseModel):
    """One chest X-ray; which sections to write and how to decode them."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "image_base64": EXAMPLE_IMAGE,
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
    findings: StructuredSection | None = Field(
        None, description="The findings section, when requested."
    )
    impression: StructuredSection | None = Field(
        None, description="The impression section, when requested."
    )


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
    sentences: list[SentenceLabels] = Field(description="The report's sentences, in order.")


class LabelsResponse(Provenance):
    machine_generated: bool = Field(True, description="Labels are model output.")
    label_set: LabelSetKey = Field(description="The label set the model labels with.")
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
    precision: float = Field(description="Precision over the labels either report has.")
    recall: float = Field(description="Recall over the labels either report has.")
    f1: float = Field(description="F1 over the labels either report has.")


class LabelScore(BaseModel):
    precision: float = Field(description="Precision of this label over all reports.")
    recall: float = Field(description="Recall of this label over all reports.")
    f1: float = Field(description="F1 of this label over all reports.")
    support: int = Field(description="Reference reports that have the label.")


class ScoreResponse(Provenance):
    metric: Literal["f1_srr_bert"] = Field("f1_srr_bert", description="The metric computed.")
    label_set: LabelSetKey = Field(description="The label set scored with.")
    precision: float = Field(description="Weighted-average precision (scikit-learn).")
    recall: float = Field(description="Weighted-average recall.")
    f1: float = Field(description="Weighted-average F1: F1-SRR-BERT (RadEval rounds it to 4).")
    per_sample: list[SampleScore] = Field(
        description="RadEval's per-sample scores: the mean over the labels either report has; "
        "1.0 when neither has any."
    )
    per_label: dict[str, LabelScore] | None = Field(None, description="With per_label=true.")
