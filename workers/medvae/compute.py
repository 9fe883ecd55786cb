"""MedVAE preprocessing as released, value mappings back to image units, and the encode/decode
runs (batched 2D; MONAI sliding-window 3D under a window-size memory budget)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.errors import InvalidInput
from model_store.manifest import Intensity
from workers.medvae.autoencoder import MedVAE

K_DIVISIBLE = 16


@dataclass
class Window:
    """Sliding-window settings for 3D models: the window side bounds the memory per step."""

    roi: int = 96
    overlap: float = 0.25
    sw_batch_size: int = 1


def prepare_2d(pixels: np.ndarray, in_channels: int, from_8bit: bool) -> torch.Tensor:
    """[C,H,W] stored values -> [in_channels,H,W] in [-1,1]: per-channel min-max to [0,1]
    (after /255 for 8-bit files, as ToTensor does), then (x-0.5)/0.5; channel mean for 1-channel
    models."""
    from monai.transforms import ScaleIntensity

    if pixels.ndim == 2:
        pixels = pixels[None]
    channels = pixels.shape[0]
    if in_channels == 3 and channels != 3:
        raise InvalidInput(
            f"this model takes 3-channel (RGB) images, the input has {channels} channel(s); "
            "send an RGB image or use a 1-channel model (medvae-4-1-2d, medvae-8-1-2d)"
        )
    if in_channels == 1 and channels not in (1, 3):
        raise InvalidInput(f"send a 1- or 3-channel image, not {channels} channels")
    x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))
    if from_8bit:
        x = x.div(255)
    x = ScaleIntensity(channel_wise=True, minv=0, maxv=1)(x)
    x = torch.as_tensor(x).sub(0.5).div(0.5)
    if in_channels == 1:
        x = x.mean(0, keepdim=True)
    return x.contiguous()


def prepare_3d(
    volume: np.ndarray, affine: np.ndarray, rule: Intensity | None, crop: str = "foreground"
) -> tuple[torch.Tensor, np.ndarray]:
    """Volume in file order + affine -> ([1,X,Y,Z] in [-1,1], affine after orientation and crop).

    RAS orientation; the manifest's intensity rule for the modality (CT: HU window
    [-1000,1000]; MRI: min-max); then the foreground crop with sides a multiple of 16
    (`crop="foreground"`, as released) or padding to a multiple of 16 with the background value
    -1 (`crop="none"`)."""
    from monai.data import MetaTensor
    from monai.transforms import (
        CropForeground,
        DivisiblePad,
        Orientation,
        ScaleIntensity,
        ScaleIntensityRange,
    )

    x = MetaTensor(
        torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None],
        affine=torch.as_tensor(affine, dtype=torch.float64),
    )
    x = Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))(x)
    if rule is not None and rule.normalise == "window" and rule.window is not None:
        low, high = rule.window
        x = ScaleIntensityRange(a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)(x)
    else:
        x = ScaleIntensity(channel_wise=True, minv=0, maxv=1)(x)
    x = (x - 0.5) / 0.5
    if crop == "foreground":
        x = CropForeground(k_divisible=[K_DIVISIBLE] * 3)(x)
        if min(x.shape[1:]) == 0:
            raise InvalidInput(
                "the volume has no foreground to crop to (no voxel above HU 0 for CT, above the "
                "middle intensity for MRI); send crop=none to keep the whole volume"
            )
    else:
        x = DivisiblePad(K_DIVISIBLE, value=-1.0)(x)
    out_affine = np.asarray(x.affine, dtype=np.float64)
    return x.as_tensor().contiguous(), out_affine


def image_values(
    x: np.ndarray, rule: Intensity | None, value_range: list[float] | None
) -> np.ndarray:
    """Model space [-1,1] back to image units: 2D -> [0,1]; a windowed modality (CT) -> its
    unit (HU); min-max (MRI) -> the original range when known (from encode), else [0,1]."""
    unit = np.clip((x + 1.0) / 2.0, 0.0, 1.0)
    if rule is not None and rule.normalise == "window" and rule.window is not None:
        low, high = rule.window
        return unit * (high - low) + low
    if rule is not None and rule.normalise == "minmax" and value_range is not None:
        low, high = value_range
        return unit * (high - low) + low
    return unit


def latent_affine(affine: np.ndarray, factor: int) -> np.ndarray:
    """Voxel i of the latent covers input voxels f*i .. f*i+f-1; its centre is f*i + (f-1)/2."""
    scale = np.diag([float(factor)] * 3 + [1.0])
    scale[:3, 3] = (factor - 1) / 2.0
    return affine @ scale


def image_affine(affine: np.ndarray, factor: int) -> np.ndarray:
    scale = np.diag([float(factor)] * 3 + [1.0])
    scale[:3, 3] = (factor - 1) / 2.0
    return affine @ np.linalg.inv(scale)


def _generators(seeds: list[int | None]) -> list[torch.Generator | None]:
    out: list[torch.Generator | None] = []
    for seed in seeds:
        if seed is None:
            out.append(None)
        else:
            gen = torch.Generator()
            gen.manual_seed(seed)
            out.append(gen)
    return out


def _latent(model: MedVAE, x: torch.Tensor, gen: torch.Generator | None, kind: str) -> torch.Tensor:
    z = model.encode(x, gen)
    return model.project(z) if kind == "s2" else z


@torch.inference_mode()
def encode_batch(
    model: MedVAE, images: list[torch.Tensor], seeds: list[int | None], kind: str
) -> list[np.ndarray]:
    """2D: one forward pass for images of equal shape; each item keeps its own seed."""
    x = torch.stack(images).to(next(model.parameters()).device)
    mean, std = model.moments(x)
    outs = []
    for i, gen in enumerate(_generators(seeds)):
        z = mean[i : i + 1]
        if gen is not None:
            z = z + std[i : i + 1] * torch.randn(z.shape, generator=gen).to(z.device)
        if kind == "s2":
            z = model.project(z)
        outs.append(z[0].float().cpu().numpy())
    return outs


@torch.inference_mode()
def decode_batch(model: MedVAE, latents: list[torch.Tensor]) -> list[np.ndarray]:
    z = torch.stack(latents).to(next(model.parameters()).device)
    return list(model.decode(z).float().cpu().numpy())


def _sliding(inputs: torch.Tensor, roi: list[int], window: Window, predictor: Any) -> torch.Tensor:
    from monai.inferers import sliding_window_inference

    out = sliding_window_inference(
        inputs=inputs,
        roi_size=roi,
        sw_batch_size=window.sw_batch_size,
        predictor=predictor,
        overlap=window.overlap,
        mode="gaussian",
    )
    return torch.as_tensor(out)


@torch.inference_mode()
def encode_volume(
    model: MedVAE, volume: torch.Tensor, window: Window, seed: int | None, kind: str
) -> np.ndarray:
    """[1,X,Y,Z] -> latent [C,X/f,Y/f,Z/f], window by window, Gaussian-weighted blending."""
    gen = _generators([seed])[0]
    x = volume[None].to(next(model.parameters()).device)
    roi = [min(window.roi, n) for n in x.shape[2:]]
    out = _sliding(x, roi, window, lambda patch: _latent(model, patch, gen, kind))
    return out[0].float().cpu().numpy()


@torch.inference_mode()
def decode_volume(model: MedVAE, latent: torch.Tensor, window: Window) -> np.ndarray:
    """[C,x,y,z] latent -> [1,X,Y,Z] image, windows of roi/f latent voxels."""
    z = latent[None].to(next(model.parameters()).device)
    side = max(1, window.roi // model.factor)
    roi = [min(side, n) for n in z.shape[2:]]
    out = _sliding(z, roi, window, model.decode)
    return out[0].float().cpu().numpy()
