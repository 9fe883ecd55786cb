"""The demographic classifiers' contract (torch-free): what jobs, the gateway and workers share.

Three kinds of model (the manifest's `adapter.kind`), the checks RoentGen-v2's release runs on
its synthetic images (`run_inference_w_quality_check.py`):

- `sex`: the ResNet-34 of Glocker et al. (chexploration, CheXpert), a PyTorch Lightning
  checkpoint; softmax over 2 classes, class 1 is female.
- `race`: torchxrayvision's `emory_hiti.RaceModel` (ResNet-34, MIMIC-CXR); classes Asian,
  Black, White.
- `age`: torchxrayvision's `riken.AgeModel` (SENet-154, NIH), a TorchScript file; years.

Input `IMAGE` BYTES [n]: one chest X-ray file per row (PNG, JPEG, single-frame DICOM). Outputs
per row: `prediction` BYTES (the class in the platform's spelling: female/male, ASIAN/BLACK/
WHITE; or the age in whole years, rounded as the release does), `probabilities` FP32 [n, K]
(classifiers) and `age` FP32 [n] (the age model's raw output). Every image is first resized to
224x224 (the release's QC resize), then scaled per model as released.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from workers.runtime.params import OIPParams
from workers.runtime.spec import TensorSpec

Kind = Literal["sex", "race", "age"]

# Classes in each classifier's output order, spelt as RoentGen-v2 prompts spell them.
CLASSES: dict[str, tuple[str, ...]] = {
    "sex": ("male", "female"),  # released: argmax 1 -> "F"
    "race": ("ASIAN", "BLACK", "WHITE"),  # torchxrayvision RaceModel.targets, upper-cased
    "age": (),
}
DEFAULT_MODELS: dict[str, str] = {"sex": "cxr-sex", "race": "cxr-race", "age": "cxr-age"}

QC_SIZE = 224  # the release resizes every image to 224x224 (monai Resize, area) first
NATIVE_SIZE = 320  # torchxrayvision's race and age models resize to 320 (bilinear, antialias)
# Per-model intensity scaling after the resize (monai ScaleIntensity: per image min..max).
SCALE: dict[str, tuple[float, float]] = {"sex": (0.0, 255.0), "race": (-1024.0, 1024.0),
                                         "age": (-1024.0, 1024.0)}  # fmt: skip
MAX_AGE_DELTA = 16.0  # released: an image fails when |requested - predicted age| > 16 years
RESNET34_LAYERS = (3, 4, 6, 3)
MAX_IMAGES = 64  # per request

INPUTS = [TensorSpec("IMAGE", "BYTES", (-1,))]
OUTPUTS = [
    TensorSpec("prediction", "BYTES", (-1,)),
    TensorSpec("probabilities", "FP32", (-1, -1)),
    TensorSpec("age", "FP32", (-1,)),
]


class Params(OIPParams):
    """No request parameters: preprocessing and classes are fixed by the released models."""


class Options(BaseModel):
    """The manifest's `adapter` block."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    weights_file: str = Field(
        ..., min_length=1, description="The released file name inside the model folder."
    )


class Tiny(BaseModel):
    """The manifest's `tiny` block: the random same-architecture build for tests."""

    model_config = ConfigDict(extra="forbid")

    # ResNet blocks per stage (released: 3, 4, 6, 3); the loader reads them from the weights.
    layers: list[int] = Field([1, 1, 1, 1], min_length=4, max_length=4)
    # The age model's SENet: base width and groups of its bottlenecks (released SENet-154:
    # 64 and 64); the TorchScript file carries its own graph, so any width loads.
    senet_width: int = Field(8, ge=4, le=64)
    senet_groups: int = Field(4, ge=1, le=64)
    head_features: int = Field(32, ge=4, le=512)
    # The final layer's bias, its weights zeroed: the model then predicts this constant
    # (class logits, or an age in years); tests plant a classifier's decision with it.
    head_bias: list[float] | None = Field(None, min_length=1, max_length=3)
