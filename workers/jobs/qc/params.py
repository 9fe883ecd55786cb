"""The `qc` parameter blocks: which checks run, with which served models and thresholds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from workers.cxr_demographics.contract import DEFAULT_MODELS, MAX_AGE_DELTA
from workers.jobs.types import JobParams
from workers.srrg.contract import LABEL_MODELS, MAX_BEAMS, MAX_LENGTH, METRIC_LABEL_SET

Check = Literal["findings", "sex", "race", "age"]
CHECKS: tuple[Check, ...] = ("findings", "sex", "race", "age")


class QCChecks(JobParams):
    """What is checked on every image, and how a check passes."""

    checks: list[Check] = Field(
        list(CHECKS),
        min_length=1,
        description="findings: SRRG report of the image vs the prompt's finding text, both "
        "labelled by SRR-BERT; sex, race, age: the released RoentGen-v2 QC classifiers.",
    )
    skip_unavailable: bool = Field(
        True,
        description="A check whose model no worker serves is skipped (and named in the report) "
        "instead of failing the job.",
    )
    allow_random_weights: bool = Field(
        False,
        description="Run checks on models serving random weights (tiny or full-size random "
        "builds, as an offline install serves): for tests and demos only; false skips them.",
    )
    report_model: str = Field(
        "srrg-impression",
        description="SRRG model writing the image's report (the prompt's text is an impression, "
        "so the impression model by default; srrg-findings works too).",
    )
    label_model: str = Field(
        LABEL_MODELS[METRIC_LABEL_SET], description="SRR-BERT model labelling both texts."
    )
    num_beams: int | None = Field(None, ge=1, le=MAX_BEAMS, description="Default: the model's.")
    max_length: int | None = Field(None, ge=2, le=MAX_LENGTH, description="Default: the model's.")
    sex_model: str = Field(DEFAULT_MODELS["sex"])
    race_model: str = Field(DEFAULT_MODELS["race"])
    age_model: str = Field(DEFAULT_MODELS["age"])
    max_age_delta: float = Field(
        MAX_AGE_DELTA, ge=0, le=120, description="Pass when |requested - predicted age| <= this."
    )
    min_label_f1: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Reject images whose report's label F1 against the prompt is below this; "
        "null records the F1 without rejecting on it.",
    )
    subgroup_margin: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Warn when a subgroup's pass rate is below the rest of its dimension's by "
        "more than this.",
    )
    min_group_size: int = Field(
        10, ge=1, description="Subgroups with fewer checked images get no warning (too few)."
    )
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Level of the intervals.")
    bootstrap: int = Field(1000, ge=100, le=20_000, description="Resamples for mean-F1 CIs.")


class CampaignQC(QCChecks):
    """The `qc` block of `synthetic-dataset`: checks, plus reject-and-regenerate."""

    max_attempts: int = Field(
        3,
        ge=1,
        le=20,
        description="Generations per image slot: a rejected image is regenerated with the next "
        "derived seed up to this many times (so a cell costs at most images_per_cell x this).",
    )
    keep_rejected: bool = Field(
        False, description="Keep rejected images under rejected/ with rejected.jsonl."
    )
