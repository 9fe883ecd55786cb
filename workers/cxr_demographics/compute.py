"""Batched numerics of the demographic classifiers, as RoentGen-v2's release preprocesses.

Release (`run_inference_w_quality_check.py`, `QCDataset`): each image [3, H, W] is resized to
224x224 with monai's `Resize` (default mode "area"), then, per model, scaled with monai's
`ScaleIntensity` from the image's own min..max (a constant image becomes `image * minv`):
sex to [0, 255] on all 3 channels, into the ResNet-34, softmax; race and age to
[-1024, 1024], channel 0 only, into torchxrayvision's models. The release ran one image per
batch, so the min..max here is per image too; age's `forward(image[:, 0])` is the batched
`[B, 1, H, W]` form of what it does for one image.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from workers.cxr_demographics.contract import QC_SIZE, SCALE


def resize(image: np.ndarray) -> torch.Tensor:
    """[C, H, W] pixels -> [3, 224, 224] float32 ("area" resize); grey is replicated to three
    channels (the release's images are RGB), alpha dropped."""
    array = np.asarray(image, dtype=np.float32)
    if array.shape[0] in (2, 4):  # grey + alpha, RGB + alpha
        array = array[: array.shape[0] - 1]
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.shape[0] == 1:
        tensor = tensor.repeat(3, 1, 1)
    resized = nn.functional.interpolate(tensor[None], size=(QC_SIZE, QC_SIZE), mode="area")
    return resized[0].contiguous()


def scale(batch: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """monai `ScaleIntensity(minv=low, maxv=high)` applied to each image of `batch` alone."""
    flat = batch.reshape(batch.shape[0], -1)
    lo = flat.min(dim=1).values.view(-1, 1, 1, 1)
    hi = flat.max(dim=1).values.view(-1, 1, 1, 1)
    span = hi - lo
    constant = span == 0
    scaled = (batch - lo) / torch.where(constant, torch.ones_like(span), span) * (high - low) + low
    return torch.where(constant, batch * low, scaled)


@torch.inference_mode()
def predict(model: nn.Module, kind: str, batch: list[torch.Tensor], device: str) -> np.ndarray:
    """Probabilities [B, K] (sex, race) or ages [B] for a batch of resized images."""
    stacked = torch.stack(batch).to(device)
    low, high = SCALE[kind]
    images = scale(stacked, low, high)
    if kind == "sex":
        out = torch.softmax(model(images), dim=1)
    elif kind == "race":
        out = torch.softmax(model(images[:, :1]), dim=1)  # softmax of the log-softmax head
    else:
        out = model(images[:, :1]).reshape(-1)
    return out.float().cpu().numpy()
