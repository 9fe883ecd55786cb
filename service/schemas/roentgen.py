"""Request and response bodies of `POST /v1/roentgen/generate`.

A request names the image either by a free `prompt` or by structured fields (`age`, `sex`,
optional `race`, `impression` and/or `findings`) that render the released template
`"{age} year old {RACE} {sex}. {impression}"`. Messages say what to send instead.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.errors import InvalidInput
from service.schemas.common import Provenance
from workers.roentgen.contract import (
    DEFAULT_MAX_IMAGES,
    DEFAULT_MAX_STEPS,
    MAX_GUIDANCE,
    MAX_SEED,
    RACES,
    SCHEDULERS,
    build_prompt,
    check_age,
    check_side,
    normalise_race,
    normalise_sex,
)

MAX_TEXT = 2000  # characters; the token limit (77) is checked by the worker's tokenizer


def _plain(fn: Any, value: Any) -> Any:
    """Run a shared check; pydantic reports ValueError messages as 422 field errors."""
    try:
        return fn(value)
    except InvalidInput as error:
        raise ValueError(error.message) from None


class GenerateRequest(BaseModel):
    """Either `prompt`, or `age` + `sex` (+ `race`) + `impression`/`findings`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "age": 74,
                    "sex": "male",
                    "race": "BLACK",
                    "impression": "No acute process.",
                    "scheduler": "ddim",
                    "steps": 20,
                    "seed": 1,
                },
                {"prompt": "50 year old female. Normal chest radiograph.", "n": 2, "seed": 7},
            ]
        },
    )

    model: str = Field("roentgen-v2", description="A served model of the roentgen family.")
    prompt: str | None = Field(None, max_length=MAX_TEXT, description="Free text prompt.")
    impression: str | None = Field(None, max_length=MAX_TEXT, description="Report impression.")
    findings: str | None = Field(None, max_length=MAX_TEXT, description="Report findings.")
    sex: str | None = Field(None, description="female | male (any case).")
    age: int | None = Field(None, description="Age in whole years, 0 to 120.")
    race: str | None = Field(
        None, description=f"Optional: {' | '.join(RACES)} (any case; rendered upper case)."
    )
    n: int = Field(1, description=f"Number of images, 1 to {DEFAULT_MAX_IMAGES}.")
    seed: int | None = Field(
        None,
        description="Seed of image 0; the others derive from (seed, index). A random seed is "
        "chosen and returned when unset.",
    )
    steps: int | None = Field(None, description="Denoising steps (default 75, released).")
    guidance_scale: float | None = Field(None, description="Classifier-free guidance (3).")
    scheduler: str | None = Field(
        None, description=f"{' | '.join(SCHEDULERS)}; pndm is the released one (default)."
    )
    height: int | None = Field(None, description="Pixels, multiple of 8 (default 512).")
    width: int | None = Field(None, description="Pixels, multiple of 8 (default 512).")
    negative_prompt: str | None = Field(None, max_length=MAX_TEXT)
    truncate: bool = Field(
        False, description="Cut a prompt longer than the text encoder's 77 tokens (else 422)."
    )
    output: Literal["png", "dicom", "npy"] = Field("png", description="Encoding of each image.")
    channels: Literal[1, 3] = Field(1, description="1: grayscale (CXR), 3: RGB as decoded.")

    @field_validator("sex")
    @classmethod
    def _sex(cls, value: str | None) -> str | None:
        return None if value is None else _plain(normalise_sex, value)

    @field_validator("race")
    @classmethod
    def _race(cls, value: str | None) -> str | None:
        return None if value in (None, "") else _plain(normalise_race, value)

    @field_validator("age")
    @classmethod
    def _age(cls, value: int | None) -> int | None:
        return None if value is None else _plain(check_age, value)

    @field_validator("n")
    @classmethod
    def _n(cls, value: int) -> int:
        if not 1 <= value <= DEFAULT_MAX_IMAGES:
            raise ValueError(f"n must be between 1 and {DEFAULT_MAX_IMAGES}; send more requests")
        return value

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= DEFAULT_MAX_STEPS:
            raise ValueError(
                f"steps must be between 1 and {DEFAULT_MAX_STEPS} (75 is the released setting; "
                "ddim or dpmsolver++ give usable images in 20-30)"
            )
        return value

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= MAX_SEED:
            raise ValueError(f"seed must be between 0 and {MAX_SEED}")
        return value

    @field_validator("guidance_scale")
    @classmethod
    def _guidance(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 <= value <= MAX_GUIDANCE:
            raise ValueError(f"guidance_scale must be between 0 and {MAX_GUIDANCE:g} (3 released)")
        return value

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = value.strip().lower()
        if name not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}")
        return name

    @field_validator("height", "width")
    @classmethod
    def _side(cls, value: int | None, info: Any) -> int | None:
        if value is None:
            return None
        return _plain(lambda v: check_side(info.field_name, v), value)

    @model_validator(mode="after")
    def _prompt_or_fields(self) -> GenerateRequest:
        structured = [
            name
            for name in ("impression", "findings", "sex", "age", "race")
            if getattr(self, name) not in (None, "")
        ]
        if self.prompt is not None:
            if structured:
                raise ValueError(
                    "send either `prompt` or the structured fields (age, sex, race, "
                    f"impression, findings), not both (got {', '.join(structured)})"
                )
            if not self.prompt.strip():
                raise ValueError(
                    "prompt is empty; send text such as "
                    "'50 year old female. Normal chest radiograph.'"
                )
            return self
        if not structured:
            raise ValueError(
                "send a `prompt`, or `age`, `sex` and `impression` (race optional) to build "
                "'{age} year old {RACE} {sex}. {impression}'"
            )
        missing = [name for name in ("age", "sex") if getattr(self, name) is None]
        if missing:
            raise ValueError(
                f"the template needs {' and '.join(missing)}; send them, or a free `prompt`"
            )
        if not any((text or "").strip() for text in (self.impression, self.findings)):
            raise ValueError("send `impression` or `findings` text with the demographics")
        return self

    def text(self) -> str:
        """The prompt sent to the model."""
        if self.prompt is not None:
            return self.prompt.strip()
        assert self.age is not None and self.sex is not None
        return build_prompt(
            age=self.age,
            sex=self.sex,
            race=self.race,
            impression=self.impression,
            findings=self.findings,
        )

    def worker_parameters(self) -> dict[str, Any]:
        """OIP request parameters; unset ones take the manifest's defaults on the worker."""
        names = ("seed", "steps", "guidance_scale", "scheduler", "height", "width")
        params: dict[str, Any] = {
            k: getattr(self, k) for k in names if getattr(self, k) is not None
        }
        if self.negative_prompt:
            params["negative_prompt"] = self.negative_prompt
        params["truncate"] = self.truncate
        params["channels"] = self.channels
        params["format"] = self.output
        return params


class GeneratedImage(BaseModel):
    index: int
    seed: int
    media_type: str
    data_base64: str


class GenerateResponse(Provenance):
    """Images (base64) labelled synthetic, with what made them."""

    synthetic: bool = True
    prompt: str
    images: list[GeneratedImage]
    provenance: dict[str, Any] = Field(description="Model, weights, seeds, prompt, parameters.")
