"""Request and response bodies of `POST /v1/green/score` (one pair or a batch of pairs)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.schemas.common import Provenance
from workers.green.contract import MAX_LENGTH, SUB_CATEGORIES

MAX_PAIRS = 64
MAX_REPORT = 20_000


class Pair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: str = Field(min_length=1, max_length=MAX_REPORT, description="Reference report.")
    candidate: str = Field(min_length=1, max_length=MAX_REPORT, description="Report to judge.")


class ScoreRequest(BaseModel):
    """Either `reference` and `candidate`, or `pairs`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reference": "Heart size is normal. No effusion.",
                    "candidate": "Small left pleural effusion.",
                }
            ]
        },
    )

    model: str = Field("green-radllama2-7b", description="A served model of the green family.")
    reference: str | None = Field(None, min_length=1, max_length=MAX_REPORT)
    candidate: str | None = Field(None, min_length=1, max_length=MAX_REPORT)
    pairs: list[Pair] | None = Field(None, min_length=1, max_length=MAX_PAIRS)
    max_words: int = Field(300, ge=1, le=2000, description="Reports are cut to N words (RadEval).")

    @model_validator(mode="after")
    def _one_form(self) -> ScoreRequest:
        single = (self.reference, self.candidate)
        if self.pairs is not None and any(v is not None for v in single):
            raise ValueError("send either reference/candidate or pairs, not both")
        if self.pairs is None and any(v is None for v in single):
            raise ValueError(
                f"send reference and candidate, or pairs: a list of up to {MAX_PAIRS} of them "
                "(more go to a benchmark-reports job)"
            )
        return self

    def all_pairs(self) -> list[Pair]:
        if self.pairs is not None:
            return self.pairs
        assert self.reference is not None and self.candidate is not None
        return [Pair(reference=self.reference, candidate=self.candidate)]


class Judgement(BaseModel):
    green: float = Field(description="matched / (matched + clinically significant errors).")
    matched_findings: int
    significant_errors: dict[str, int] = Field(description=f"Per category: {SUB_CATEGORIES[0]}...")
    insignificant_errors: dict[str, int]
    answer: str = Field(description="The judge's answer after [Explanation]: (cleaned).")
    finish_reason: str


class ScoreResponse(Provenance):
    results: list[Judgement]
    green: float = Field(description="Mean GREEN over the pairs.")
    machine_generated: bool = True
    max_words: int
    max_length: int = MAX_LENGTH
