"""Request and response bodies of `POST /v1/medval/evaluate` (single and batch forms)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_BATCH = 64
MAX_TEXT = 60_000


class EvaluateItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(
        min_length=1,
        max_length=4000,
        description="A released task key (report2impression, report2simplified, "
        "impression2simplified, bhc2spanish, query2question, dialogue2note, medication2answer) "
        "or a free instruction describing what the candidate was asked to do.",
    )
    reference: str = Field(min_length=1, max_length=MAX_TEXT, description="The source text.")
    candidate: str = Field(
        min_length=1, max_length=MAX_TEXT, description="The generated text to evaluate."
    )


class EvaluateOptions(BaseModel):
    max_tokens: int = Field(1024, ge=16, le=8192, description="Answer token budget per item.")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    enable_thinking: bool = Field(False, description="Qwen3 thinking mode (off unless asked).")
    constrained: bool = Field(
        False, description="Decode under the answer grammar from the first try (no retry)."
    )


class EvaluateRequest(EvaluateOptions):
    """Either one item (`task`, `reference`, `candidate`) or `items` (1 to 64)."""

    model_config = ConfigDict(extra="forbid")

    task: str | None = Field(None, min_length=1, max_length=4000)
    reference: str | None = Field(None, min_length=1, max_length=MAX_TEXT)
    candidate: str | None = Field(None, min_length=1, max_length=MAX_TEXT)
    items: list[EvaluateItem] | None = Field(None, min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="after")
    def _one_form(self) -> EvaluateRequest:
        single = [self.task, self.reference, self.candidate]
        if self.items is not None:
            if any(value is not None for value in single):
                raise ValueError("send either task/reference/candidate or items, not both")
        elif any(value is None for value in single):
            raise ValueError(
                "send task, reference and candidate (or items: a list of up to 64 of them)"
            )
        return self

    def all_items(self) -> list[EvaluateItem]:
        if self.items is not None:
            return self.items
        assert self.task and self.reference and self.candidate
        return [EvaluateItem(task=self.task, reference=self.reference, candidate=self.candidate)]


class ErrorFound(BaseModel):
    category: str | None = Field(
        description="One of the 11 MedVAL error categories; null when the answer names none."
    )
    text: str


class Evaluation(BaseModel):
    risk_level: int = Field(ge=1, le=4)
    risk_label: Literal["No Risk", "Low Risk", "Moderate Risk", "High Risk"]
    errors: list[ErrorFound]
    reasoning: str
    task: str | None = Field(description="The released task key, or null for a free instruction.")
    constrained: bool = Field(description="True when the answer was decoded under the grammar.")


class Provenance(BaseModel):
    model: str
    version: str
    engine: Literal["vllm", "transformers"]
    served_model: str
    weights: str = Field(description="pulled | random-tiny | random-full | external")
    weights_digest: str | None


class EvaluateResponse(Evaluation, Provenance):
    pass


class BatchEvaluateResponse(Provenance):
    results: list[Evaluation]
