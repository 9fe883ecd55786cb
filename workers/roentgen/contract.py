"""RoentGen-v2 request parameters and the released prompt template (no torch).

Shared by the worker adapter (OIP parameters) and the gateway schema, so both refuse the same
things with the same messages. Template (StanfordMIMI/RoentGen-v2 demo prompts):
`"{age} year old {RACE} {sex}. {impression}"`, race optional.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from typing import Any

from core.errors import InvalidInput

SCHEDULERS = ("pndm", "ddim", "dpmsolver++")
SEXES = ("female", "male")
RACES = ("WHITE", "BLACK", "ASIAN", "HISPANIC")
MIN_AGE, MAX_AGE = 0, 120
MIN_SIDE, MAX_SIDE = 64, 1024
MAX_SEED = 2**32 - 1
MAX_GUIDANCE = 30.0
DEFAULT_MAX_STEPS = 200
DEFAULT_MAX_IMAGES = 16


def normalise_sex(value: str) -> str:
    sex = str(value).strip().lower()
    if sex not in SEXES:
        raise InvalidInput(f"sex must be one of {', '.join(SEXES)} (got {value!r})")
    return sex


def normalise_race(value: str) -> str:
    race = str(value).strip().upper()
    if race not in RACES:
        raise InvalidInput(
            f"race must be one of {', '.join(RACES)} (any case), or left out (got {value!r})"
        )
    return race


def check_age(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise InvalidInput("age must be a whole number of years between 0 and 120")
    age = int(value)
    if not MIN_AGE <= age <= MAX_AGE:
        raise InvalidInput(f"age must be between {MIN_AGE} and {MAX_AGE} years (got {age})")
    return age


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


@dataclass(frozen=True)
class GenerationParams:
    """Everything but the prompt that decides the pixels of one image."""

    steps: int
    guidance_scale: float
    scheduler: str
    height: int
    width: int
    seed: int
    negative_prompt: str = ""
    truncate: bool = False
    rgb: bool = False

    @property
    def batch_key(self) -> tuple[Any, ...]:
        """Images with equal keys can share one denoising loop."""
        return (
            "roentgen",
            self.steps,
            self.height,
            self.width,
            self.guidance_scale,
            self.scheduler,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _int(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise InvalidInput(f"parameter '{name}' must be a whole number (got {value!r})")
    return int(value)


def _bool(params: dict[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0"):
            raise InvalidInput(f"parameter '{name}' must be true or false")
        return value.lower() in ("true", "1")
    return bool(value)


def check_side(name: str, value: int) -> int:
    if not MIN_SIDE <= value <= MAX_SIDE or value % 8:
        raise InvalidInput(
            f"{name} must be a multiple of 8 between {MIN_SIDE} and {MAX_SIDE} pixels "
            f"(got {value}); the model was trained at 512"
        )
    return value


def parse_params(params: dict[str, Any], defaults: dict[str, Any]) -> GenerationParams:
    """OIP request parameters -> GenerationParams, with the manifest's defaults and limits."""
    max_steps = int(defaults.get("max_steps", DEFAULT_MAX_STEPS))
    steps = _int(params, "steps", int(defaults.get("steps", 75)))
    if not 1 <= steps <= max_steps:
        raise InvalidInput(
            f"steps must be between 1 and {max_steps} (got {steps}); 75 is the default"
        )
    raw_guidance = params.get("guidance_scale", defaults.get("guidance_scale", 3.0))
    if isinstance(raw_guidance, bool) or not isinstance(raw_guidance, int | float | str):
        raise InvalidInput("guidance_scale must be a number (3 is the released setting)")
    try:
        guidance = float(raw_guidance)
    except ValueError:
        raise InvalidInput("guidance_scale must be a number (3 is the released setting)") from None
    if not 0.0 <= guidance <= MAX_GUIDANCE:
        raise InvalidInput(
            f"guidance_scale must be between 0 and {MAX_GUIDANCE:g} (got {guidance:g})"
        )
    scheduler = str(params.get("scheduler", defaults.get("scheduler", "pndm"))).lower()
    if scheduler not in SCHEDULERS:
        raise InvalidInput(f"scheduler must be one of {', '.join(SCHEDULERS)} (got {scheduler!r})")
    height = check_side("height", _int(params, "height", int(defaults.get("height", 512))))
    width = check_side("width", _int(params, "width", int(defaults.get("width", 512))))
    seed = params.get("seed")
    seed = secrets.randbelow(MAX_SEED // 2) if seed is None else _int(params, "seed", 0)
    if not 0 <= seed <= MAX_SEED:
        raise InvalidInput(f"seed must be between 0 and {MAX_SEED} (got {seed})")
    negative = params.get("negative_prompt") or ""
    if not isinstance(negative, str):
        raise InvalidInput("negative_prompt must be a string")
    channels = _int(params, "channels", 1)
    if channels not in (1, 3):
        raise InvalidInput("channels must be 1 (grayscale, the default) or 3 (RGB)")
    return GenerationParams(
        steps=steps,
        guidance_scale=guidance,
        scheduler=scheduler,
        height=height,
        width=width,
        seed=seed,
        negative_prompt=negative,
        truncate=_bool(params, "truncate"),
        rgb=channels == 3,
    )


def check_seed_range(seed: int, n: int) -> None:
    if seed + n - 1 > MAX_SEED:
        raise InvalidInput(f"seed + n - 1 must not exceed {MAX_SEED}; send a smaller seed")
