"""Parameters of the two training jobs, torch-free: the job system validates them at submit time.

`ClassifierParams` (`train-classifier`) and `LatentClassifierParams`
(`train-latent-classifier`) are plain pydantic models; every option has a default that
reproduces the published recipe (DenseNet-121, 224 px, AdamW + cosine), and the tests shrink
them (tiny DenseNet, 32 px, a few epochs).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The 14 CheXpert observations, in the order of the CheXpert CSVs.
CHEXPERT_LABELS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
Strategy = Literal["real", "mixed", "pretrain-finetune"]
STRATEGIES: tuple[str, ...] = ("real", "mixed", "pretrain-finetune")


class Strict(BaseModel):
    """Every training option model refuses unknown (misspelt) fields instead of dropping them."""

    model_config = ConfigDict(extra="forbid")


class RealData(Strict):
    """A labelled real dataset: a CheXpert-style CSV plus the folder its paths are relative to."""

    csv: str = Field(..., min_length=1, description="CSV path or fsspec URL.")
    images: str | None = Field(None, description="Root of relative paths; default: CSV's folder.")
    path_column: str = "Path"
    labels: list[str] | None = Field(
        None, description="Label columns; default: the CheXpert observations the CSV has."
    )
    sex_column: str | None = "Sex"
    age_column: str | None = "Age"
    race_column: str | None = "Race"
    patient_column: str | None = Field(
        None, description="Patient id column: splits keep a patient's images together."
    )
    split_column: str | None = Field(
        None, description="Optional column with train/val/test per row (overrides the split)."
    )
    uncertain: Literal["zeros", "ones", "ignore"] = Field(
        "zeros", description="CheXpert -1 (uncertain) as 0, as 1, or left out of loss and metrics."
    )


class SyntheticData(Strict):
    """A `synthetic-dataset` job's output: an imagefolder with `metadata.jsonl`."""

    folder: str = Field(..., min_length=1, description="Folder or fsspec URL of the dataset.")
    finding_map: dict[str, list[str]] | None = Field(
        None, description="Finding text -> real label names; overrides the name-matching rule."
    )


class SplitOptions(Strict):
    val_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0.0, lt=0.5)


class ModelOptions(Strict):
    """MONAI DenseNet: `densenet121` as published, or `densenet` with a smaller configuration."""

    arch: Literal["densenet121", "densenet"] = "densenet121"
    init_features: int = Field(64, ge=2, le=256)
    growth_rate: int = Field(32, ge=2, le=128)
    block_config: list[int] = Field([6, 12, 24, 16], min_length=1, max_length=6)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    checkpoint: str | None = Field(None, description="Initial weights (state dict) to start from.")


class TrainOptions(Strict):
    image_size: int = Field(224, ge=16, le=1024)
    batch_size: int = Field(32, ge=1, le=4096)
    epochs: int = Field(10, ge=1, le=1000, description="Most epochs on real data (or mixed).")
    pretrain_epochs: int = Field(5, ge=1, le=1000, description="Epochs on synthetic data first.")
    lr: float = Field(1e-4, gt=0.0, le=1.0)
    finetune_lr: float | None = Field(None, gt=0.0, le=1.0, description="Default: `lr`.")
    weight_decay: float = Field(1e-2, ge=0.0, le=1.0)
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up before the cosine decay.")
    patience: int = Field(3, ge=1, description="Epochs without a better val mean AUROC.")
    min_delta: float = Field(0.0, ge=0.0)
    amp: Literal["auto", "off", "bf16", "fp16"] = Field("auto", description="CUDA only.")
    augment: bool = True
    num_workers: int = Field(0, ge=0, le=64)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    seed: int = Field(0, ge=0, lt=2**31)
    deterministic: bool = True
    checkpoint_every_steps: int = Field(0, ge=0, description="0: only at each epoch's end.")
    cache_images: bool = Field(
        True, description="Keep decoded, resized images in memory (with num_workers 0)."
    )


class EvalOptions(Strict):
    threshold: Literal["youden", "fixed"] = Field(
        "youden", description="Per label: Youden's J on the validation split, or a fixed one."
    )
    fixed_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    bootstrap: int = Field(1000, ge=0, le=100_000, description="Resamples of the test split.")
    ci: float = Field(0.95, gt=0.5, lt=1.0)
    no_finding: str = "No Finding"
    subgroups: list[str] = Field(
        ["sex", "age_bin", "race"], description="Attributes; `a+b` is an intersection."
    )
    age_bins: list[tuple[int, int]] = [(0, 39), (40, 59), (60, 79), (80, 120)]
    min_group_size: int = Field(10, ge=1, description="Sick patients a subgroup needs for gaps.")


class ClassifierParams(Strict):
    """`train-classifier`: one or several strategies on the same patient-level splits."""

    real: RealData
    synthetic: SyntheticData | None = None
    strategies: list[Strategy] = Field(["real"], min_length=1, max_length=3)
    split: SplitOptions = SplitOptions()
    model: ModelOptions = ModelOptions()
    train: TrainOptions = TrainOptions()
    eval: EvalOptions = EvalOptions()

    @model_validator(mode="after")
    def _check(self) -> ClassifierParams:
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError("strategies must not repeat")
        if self.synthetic is None and set(self.strategies) - {"real"}:
            raise ValueError("strategies mixed and pretrain-finetune need a `synthetic` dataset")
        return self


class LatentClassifierParams(Strict):
    """`train-latent-classifier`: the same DenseNet on MedVAE latents and on their images."""

    real: RealData = Field(..., description="Labels (and images) the latents were encoded from.")
    latents: str = Field(..., min_length=1, description="A latent-dataset job's output folder.")
    factor: int | None = Field(None, ge=1, le=64, description="Default: from the model name.")
    compare_images: bool = Field(True, description="Also train on the full-resolution images.")
    split: SplitOptions = SplitOptions()
    model: ModelOptions = ModelOptions()
    train: TrainOptions = Field(
        TrainOptions(), description="`augment` is ignored: neither arm is augmented (fair test)."
    )
    eval: EvalOptions = EvalOptions()
