"""Request and response bodies of `POST /v1/medval/evaluate` (single and batch forms)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.validation import closest
from service.schemas.common import Provenance
from workers.medval.contract import TASKS

MAX_BATCH = 64
MAX_TEXT = 60_000


def check_task(value: str | None) -> str | None:
    """A released task key, or a message naming the closest one."""
    if value is None or value in TASKS:
        return value
    hint = closest(value, TASKS)
    suggestion = f"did you mean '{hint}'? " if hint else ""
    raise ValueError(
        f"'task' must be a released MedVAL task ({', '.join(TASKS)}); {suggestion}"
        "send a free instruction as 'instruction' instead"
    )


class EvaluateItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str | None = Field(
        None,
        description=f"A released task key: {', '.join(TASKS)}. Its released instruction is used.",
        examples=["report2impression"],
    )
    instruction: str | None = Field(
        None,
        min_length=1,
        max_length=4000,
        description="Instead of `task`: a free instruction saying what the candidate was asked "
        "to do.",
    )
    reference: str = Field(min_length=1, max_length=MAX_TEXT, description="The source text.")
    candidate: str = Field(
        min_length=1, max_length=MAX_TEXT, description="The generated text to evaluate."
    )

    @field_validator("task")
    @classmethod
    def _task(cls, value: str | None) -> str | None:
        return check_task(value)

    @model_validator(mode="after")
    def _one_instruction(self) -> EvaluateItem:
        if (self.task is None) == (self.instruction is None):
            raise ValueError("send exactly one of 'task' (a released key) and 'instruction'")
        return self


class EvaluateOptions(BaseModel):
    max_tokens: int = Field(1024, ge=16, le=8192, description="Answer token budget per item.")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    enable_thinking: bool = Field(False, description="Qwen3 thinking mode (off unless asked).")
    constrained: bool = Field(
        False, description="Decode under the answer grammar from the first try (no retry)."
    )


class EvaluateRequest(EvaluateOptions):
    """Either one item (`task` or `instruction`, `reference`, `candidate`) or `items`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "task": "report2impression",
                    "reference": "FINDINGS: Mild cardiomegaly. No pleural effusion.",
                    "candidate": "IMPRESSION: Mild cardiomegaly.",
                    "max_tokens": 256,
                }
            ]
        },
    )

    model: str = Field("medval-4b", description="A served model of the medval family.")
    task: str | None = Field(None, description="A released task key (see EvaluateItem).")
    instruction: str | None = Field(None, min_length=1, max_length=4000)
    reference: str | None = Field(None, min_length=1, max_length=MAX_TEXT)
    candidate: str | None = Field(None, min_length=1, max_length=MAX_TEXT)
    items: list[EvaluateItem] | None = Field(None, min_length=1, max_length=MAX_BATCH)

    @field_validator("task")
    @classmethod
    def _task(cls, value: str | None) -> str | None:
        return check_task(value)

    @model_validator(mode="after")
    def _one_form(self) -> EvaluateRequest:
        single = [self.task or self.instruction, self.reference, self.candidate]
        if self.items is not None:
            if any(value is not None for value in single):
                raise ValueError(
                    "send either task (or instruction)/reference/candidate or items, not both"
                )
        elif any(value is None for value in single):
            raise ValueError(
                "send task (or instruction), reference and candidate, or items: a list of up "
                f"to {MAX_BATCH} of them"
            )
        elif self.task is not None and self.instruction is not None:
            raise ValueError("send exactly one of 'task' (a released key) and 'instruction'")
        return self

    def all_items(self) -> list[EvaluateItem]:
        if self.items is not None:
            return self.items
        assert self.reference and self.candidate
        return [
            EvaluateItem(
                task=self.task,
                instruction=self.instruction,
                reference=self.reference,
                candidate=self.candidate,
            )
        ]


class ErrorFound(BaseModel):
    category: str | None = Field(
        description="One of the 11 MedVAL error categories; null when the answer names none."
    )
    text: str


class Evaluation(BaseModel):
    risk_level: int | None = Field(None, ge=1, le=4, description="Null when `error` is set.")
    risk_label: Literal["No Risk", "Low Risk", "Moderate Risk", "High Risk"] | None = None
    errors: list[ErrorFound] = Field(default_factory=list)
    reasoning: str = ""
    task: str | None = Field(description="The released task key, or null for a free instruction.")
    constrained: bool = Field(description="True when the answer was decoded under the grammar.")
    error: str | None = Field(
        None, description="Batch form: why this item has no grade (the others keep theirs)."
    )


class EngineProvenance(Provenance):
    machine_generated: bool = Field(True, description="Grades are model output, not a review.")
    engine: Literal["vllm", "transformers"]
    served_model: str


class EvaluateResponse(Evaluation, EngineProvenance):
    pass


class BatchEvaluateResponse(EngineProvenance):
    results: list[Evaluation]
