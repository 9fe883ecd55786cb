"""RoentGen-v2's contract (torch-free): tensors, parameters, limits, the released prompt template
and how each image's seed is derived. Shared by the worker adapter, the gateway's schema and
the campaign job, so all of them refuse the same things with the same messages.

Template (StanfordMIMI/RoentGen-v2 demo prompts): `"{age} year old {RACE} {sex}. {impression}"`,
race optional.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import InvalidInput
from workers.runtime.params import OIPParams
from workers.runtime.spec import TensorSpec

SCHEDULERS = ("pndm", "ddim", "dpmsolver++")
SEXES = ("female", "male")
RACES = ("WHITE", "BLACK", "ASIAN", "HISPANIC")
FORMATS = ("png", "dicom", "npy")
MIN_AGE, MAX_AGE = 0, 120
MIN_SIDE, MAX_SIDE = 64, 1024
MAX_SEED = 2**32 - 1
MAX_GUIDANCE = 30.0
DEFAULT_MAX_STEPS = 200
DEFAULT_MAX_IMAGES = 16
EXAMPLE_PROMPT = "50 year old female. Normal chest radiograph."
SEED_DERIVATION = (
    "image 0 uses the request seed; image i > 0 uses "
    "numpy.random.SeedSequence([seed, i]).generate_state(1)[0]"
)

INPUTS = [TensorSpec("prompt", "BYTES", (-1,))]
OUTPUTS = [
    TensorSpec("FILE", "BYTES", (-1,)),
    TensorSpec("image", "UINT8", (-1, -1, -1)),
    TensorSpec("seed", "INT64", (-1,)),
]


def normalise_sex(value: str) -> str:
    sex = str(value).strip().lower()
    if sex not in SEXES:
        raise InvalidInput(f"sex must be one of {', '.join(SEXES)}")
    return sex


def normalise_race(value: str) -> str:
    race = str(value).strip().upper()
    if race not in RACES:
        raise InvalidInput(f"race must be one of {', '.join(RACES)} (any case), or left out")
    return race


def check_age(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise InvalidInput(f"age must be a whole number of years between {MIN_AGE} and {MAX_AGE}")
    age = int(value)
    if not MIN_AGE <= age <= MAX_AGE:
        raise InvalidInput(f"age must be between {MIN_AGE} and {MAX_AGE} years")
    return age


def check_side(name: str, value: int) -> int:
    if not MIN_SIDE <= value <= MAX_SIDE or value % 8:
        raise InvalidInput(
            f"{name} must be a multiple of 8 between {MIN_SIDE} and {MAX_SIDE} pixels; "
            "the model was trained at 512"
        )
    return value


def build_prompt(
    *,
    age: int,
    sex: str,
    impression: str | None = None,
    findings: str | None = None,
    race: str | None = None,
) -> str:
    """The released template. `impression` fills the text slot; `findings`, when given,
    comes first (findings, then impression)."""
    text = " ".join(part.strip() for part in (findings, impression) if part and part.strip())
    if not text:
        raise InvalidInput("send `impression` or `findings` text with the demographics")
    demographics = f"{check_age(age)} year old"
    if race:
        demographics += f" {normalise_race(race)}"
    return f"{demographics} {normalise_sex(sex)}. {text}"


def image_seed(seed: int, index: int) -> int:
    """The seed of image `index` of a request: distinct (seed, index) pairs do not collide
    (image 0 keeps `seed`, so one image equals plain diffusers with that seed)."""
    if index == 0:
        return seed
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


class Params(OIPParams):
    """OIP request parameters of a generation (unset ones take the manifest's defaults)."""

    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="Random when unset.")
    steps: int = Field(75, ge=1, le=DEFAULT_MAX_STEPS)
    guidance_scale: float = Field(3.0, ge=0.0, le=MAX_GUIDANCE)
    scheduler: Literal["pndm", "ddim", "dpmsolver++"] = "pndm"
    height: int = 512
    width: int = 512
    negative_prompt: str = Field("", max_length=2000)
    truncate: bool = False
    channels: Literal[1, 3] = 1
    format: Literal["png", "dicom", "npy"] = "png"

    @field_validator("scheduler", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("height", "width")
    @classmethod
    def _side(cls, value: int, info: Any) -> int:
        try:
            return check_side(str(info.field_name), value)
        except InvalidInput as error:
            raise ValueError(error.message) from None

    def with_seed(self) -> Params:
        """These parameters with a seed chosen when none was sent (reported back)."""
        if self.seed is not None:
            return self
        return self.model_copy(update={"seed": secrets.randbelow(MAX_SEED // 2)})

    @property
    def batch_key(self) -> tuple[Any, ...]:
        """Images with equal keys can share one denoising loop."""
        return ("roentgen", self.steps, self.height, self.width, self.guidance_scale,
                self.scheduler)  # fmt: skip

    def settings(self) -> dict[str, Any]:
        """What decides the pixels besides prompt and seed (recorded in provenance)."""
        return self.model_dump(include={"steps", "guidance_scale", "scheduler", "height",
                                        "width", "negative_prompt", "truncate"})  # fmt: skip


class Options(BaseModel):
    """The manifest's `adapter` block."""

    model_config = ConfigDict(extra="forbid")

    dtype_gpu: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    dtype_cpu: Literal["bfloat16", "float32"] = "float32"
    # Images per network call: 1 makes a batched image bit-identical to the same image run
    # alone (fixed shapes); 0 runs the whole batch per call (more throughput on a GPU).
    micro_batch_cpu: int = Field(1, ge=0)
    micro_batch_gpu: int = Field(0, ge=0)
    max_steps: int = Field(DEFAULT_MAX_STEPS, ge=1, le=DEFAULT_MAX_STEPS)
    # GPU only (workers.roentgen.gpu): channels-last UNet and VAE; `torch.compile` of the UNet
    # ("reduce-overhead" adds CUDA graphs); batches bounded by this fraction of free memory.
    channels_last_gpu: bool = True
    compile_gpu: Literal["off", "default", "reduce-overhead", "max-autotune"] = "off"
    memory_fraction: float = Field(0.8, gt=0, le=1)
