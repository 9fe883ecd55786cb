"""Merlin's contract (torch-free): tensors, parameters, manifest options, limits and tasks.

Three served kinds share one family, one manifest each (`adapter.kind`):
- `clip` (model `merlin`): a CT -> pooled features [2048], contrastive embedding [512],
  1,692 phenotype probabilities and zero-shot findings; texts -> 512-d text embeddings.
- `five_year` (model `merlin-five-year`): a CT -> six five-year disease probabilities.
- `report` (model `merlin-report`): a CT -> one generated text per organ system.

Inputs: `IMAGE` BYTES [1] (NIfTI .nii / .nii.gz, or a zip of one DICOM series) or, for the
clip kind, `TEXT` BYTES [N] (report texts). Labelled results travel as JSON in `RESULT` BYTES
(one element per image or per request); vectors as FP32 tensors, or as .npy files in `FILE`.
"""

from __future__ import annotations

import base64
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workers.merlin.prompts import DATA, ORGAN_SYSTEMS, builtin_findings
from workers.runtime.params import OIPParams
from workers.runtime.spec import TensorSpec

Kind = Literal["clip", "five_year", "report"]
CLIP_MODEL, FIVE_YEAR_MODEL, REPORT_MODEL = "merlin", "merlin-five-year", "merlin-report"

# The released preprocessing (merlin/data/monai_transforms.py).
PIXDIM = (1.5, 1.5, 3.0)
ROI = (224, 224, 160)
HU_WINDOW = (-1000.0, 1000.0)
ORIENTATION = "RAS"

FEATURE_DIM, EMBEDDING_DIM, PHENOTYPE_COUNT, FIVE_YEAR_COUNT = 2048, 512, 1692, 6

# Tasks of POST /v1/merlin/analyze; the clip model serves the first three.
CLIP_TASKS = ("embedding", "phenotypes", "findings")
TASKS = (*CLIP_TASKS, "five_year")
ClipTask = Literal["embedding", "phenotypes", "findings"]
Task = Literal["embedding", "phenotypes", "findings", "five_year"]

MAX_TEXTS = 64
MAX_TEXT_CHARS = 20_000
MAX_USER_FINDINGS = 32
MAX_PROMPTS = 32
MAX_PROMPT_CHARS = 500
DEFAULT_TOP_K = 20
MAX_NEW_TOKENS_LIMIT = 512

FINDINGS_PROCEDURE = (
    "Zero-shot, as the Merlin maintainers describe it (StanfordMIMI/Merlin issue #7): the mean "
    "cosine similarity of the image's contrastive embedding to the finding's positive prompts "
    "against the mean to its negative prompts; present when the positive mean is higher. No "
    "temperature or softmax is applied; `margin` is positive minus negative."
)
BUILTIN_FINDINGS_CAVEAT = (
    "The built-in list is the best sourced one, not the paper's official 31-finding list (not "
    "found): the maintainers' DiseasePrompts (issue #37) in the order of the 30 columns of "
    "zero_shot_findings_disease_cls.csv; prompts verbatim."
)

INPUTS = [
    TensorSpec("IMAGE", "BYTES", (1,), optional=True),
    TensorSpec("TEXT", "BYTES", (-1,), optional=True),
]
OUTPUTS = [
    TensorSpec("FEATURES", "FP32", (-1, FEATURE_DIM)),
    TensorSpec("EMBEDDING", "FP32", (-1, EMBEDDING_DIM)),
    TensorSpec("PHENOTYPES", "FP32", (-1, PHENOTYPE_COUNT)),
    TensorSpec("TEXT_EMBEDDING", "FP32", (-1, EMBEDDING_DIM)),
    TensorSpec("FILE", "BYTES", (-1,)),
    TensorSpec("RESULT", "BYTES", (-1,)),
]
IMAGE_INPUTS = [TensorSpec("IMAGE", "BYTES", (1,))]
FIVE_YEAR_OUTPUTS = [
    TensorSpec("FIVE_YEAR", "FP32", (-1, FIVE_YEAR_COUNT)),
    TensorSpec("RESULT", "BYTES", (-1,)),
]
REPORT_OUTPUTS = [TensorSpec("RESULT", "BYTES", (-1,))]

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with files, an empty zip


def ct_file_kind(data: bytes) -> Literal["nifti", "zip"] | None:
    """What a CT upload is by its magic bytes: NIfTI (plain or gzip), a zip, or neither."""
    if data.startswith(ZIP_MAGIC):
        return "zip"
    nifti1 = data[344:348] in (b"n+1\0", b"ni1\0")
    nifti2 = data[4:8] in (b"n+2\0", b"ni2\0")
    if data.startswith(GZIP_MAGIC) or nifti1 or nifti2:
        return "nifti"
    return None


CT_FILE_HELP = (
    "send a CT volume as NIfTI (.nii / .nii.gz) or a .zip holding the DICOM slices of one series"
)


class UserFinding(BaseModel):
    """A finding of the caller's own, scored like the built-in ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        min_length=1, max_length=64, pattern=r"^[\w .:/()-]+$",
        description="Label of the finding in the answer.",
    )  # fmt: skip
    positive: list[str] = Field(
        min_length=1, max_length=MAX_PROMPTS,
        description="Prompts stating the finding is present (report-style sentences).",
    )  # fmt: skip
    negative: list[str] = Field(
        min_length=1, max_length=MAX_PROMPTS,
        description="Prompts stating it is absent (e.g. 'no pleural effusion').",
    )  # fmt: skip

    @field_validator("positive", "negative")
    @classmethod
    def _prompts(cls, value: list[str]) -> list[str]:
        if any(not p.strip() or len(p) > MAX_PROMPT_CHARS for p in value):
            raise ValueError(f"each prompt must be 1 to {MAX_PROMPT_CHARS} characters")
        return value


@lru_cache(maxsize=1)
def builtin_finding_names() -> tuple[str, ...]:
    return tuple(f.name for f in builtin_findings())


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class ClipParams(OIPParams):
    """Parameters of the clip model: analysis of a CT, or text embedding."""

    tasks: list[ClipTask] = Field(default_factory=lambda: list(CLIP_TASKS), min_length=1)
    top_k: int | Literal["all"] = Field(DEFAULT_TOP_K, description="Phenotypes returned.")
    findings: list[str] | None = Field(None, description="Built-in findings (None: all).")
    findings_prompts: list[UserFinding] = Field(default_factory=list, max_length=MAX_USER_FINDINGS)
    embedding_format: Literal["json", "npy"] = "json"

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, value: list[str]) -> list[str]:
        return _unique(value)

    @field_validator("top_k")
    @classmethod
    def _top_k(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= PHENOTYPE_COUNT:
            raise ValueError(f"top_k must be 1 to {PHENOTYPE_COUNT}, or 'all'")
        return value

    @field_validator("findings")
    @classmethod
    def _findings(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        known = builtin_finding_names()
        unknown = [name for name in value if name not in known]
        if unknown:
            raise ValueError(
                f"unknown built-in finding {unknown[0]!r}; known: {', '.join(known)} (send your "
                "own in findings_prompts)"
            )
        return _unique(value)

    @model_validator(mode="after")
    def _names(self) -> ClipParams:
        names = [f.name for f in self.findings_prompts]
        clash = [n for n in names if n in builtin_finding_names()] or [
            n for n in names if names.count(n) > 1
        ]
        if clash:
            raise ValueError(
                f"findings_prompts name {clash[0]!r} is used twice or by a built-in finding; "
                "give each of your findings its own name"
            )
        return self

    def top_count(self) -> int:
        return PHENOTYPE_COUNT if self.top_k == "all" else int(self.top_k)


class ReportParams(OIPParams):
    """Parameters of the report model (defaults: the released generation settings)."""

    organ_systems: list[Literal[ORGAN_SYSTEMS]] | None = Field(  # type: ignore[valid-type]
        None, description="Organ systems to report on (None: all 13, in the released order)."
    )
    max_new_tokens: int = Field(128, ge=1, le=MAX_NEW_TOKENS_LIMIT)
    repetition_penalty: float = Field(1.2, ge=1.0, le=2.0)

    @field_validator("organ_systems")
    @classmethod
    def _organs(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("name at least one organ system, or leave organ_systems unset")
        return None if value is None else _unique(value)

    def organs(self) -> tuple[str, ...]:
        return tuple(self.organ_systems) if self.organ_systems else ORGAN_SYSTEMS


class FiveYearParams(OIPParams):
    """The five-year model takes no parameters."""


class Params(ClipParams, ReportParams):
    """Every Merlin parameter: what a manifest's `defaults` may set (each adapter parses its own
    kind's parameters, refusing the others)."""


class Options(BaseModel):
    """The manifest's `adapter` block."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    variant: Literal["mtl", "stage1_stage2"] = Field(
        "mtl", description="Report checkpoint: _average_mtl.pt (0.0.7 default) or _average.pt."
    )
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    micro_batch: int | None = Field(None, ge=1, description="Volumes per forward pass.")
    preprocess_concurrency: int = Field(
        2, ge=1, le=64, description="CT files decoded and resampled at once (bounds memory)."
    )
    text_batch_size: int = Field(32, ge=1, le=1024)
    precompute_findings: bool = Field(
        False, description="Embed the built-in finding prompts at load instead of on first use."
    )


class Tiny(BaseModel):
    """The manifest's `tiny` block (see workers.merlin.tiny)."""

    model_config = ConfigDict(extra="forbid")

    model: Kind | None = None
    image_layers: list[int] = Field(default_factory=lambda: [1, 1, 1, 1], min_length=4,
                                    max_length=4)  # fmt: skip
    width_per_group: int = Field(16, ge=1)
    init_gain: float = Field(0.5, gt=0)
    text_layers: int = Field(1, ge=1)
    attention_window: int = Field(8, ge=2, multiple_of=2)
    text_intermediate: int = Field(64, ge=1)
    llm_hidden_size: int = Field(64, ge=8)
    llm_intermediate_size: int | None = Field(None, ge=8)
    llm_layers: int = Field(1, ge=1)
    llm_heads: int = Field(4, ge=1)
    lora_rank: int = Field(512, ge=1)


@lru_cache(maxsize=1)
def example_ct_base64() -> str:
    """The synthetic phantom CT (40x40x24, .nii.gz) used by the request examples."""
    return base64.b64encode((DATA / "phantom_ct.nii.gz").read_bytes()).decode()
