"""Torch datasets for training: grayscale images (resized, lightly augmented) and latents.

Every random choice (epoch order, augmentation) comes from a generator seeded by
(run seed, stage, epoch[, image index]), never from global state: the same seed gives the same
batches whether or not the run was interrupted, and with any number of loader workers.

Augmentation (training split only): a random affine with rotation within +-10 degrees,
translation within +-5% of the side and scale 0.95-1.05; no flips, because a chest film's
left/right is anatomy (heart, aortic knob, gastric bubble) and flipped images would teach
the classifier dextrocardia. Lighter than torchxrayvision's recipe (45 degrees, 15%, 0.85-1.15,
scripts/train_model.py) since the inputs are already aligned PA/AP films.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import fsspec
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from core.errors import InvalidInput
from workers.imaging.readers import read_any

MAX_PIXELS = 8192 * 8192
ROTATE_DEG, SHIFT, ZOOM = 10.0, 0.05, 0.05


def stage_seed(seed: int, stage: str) -> int:
    """A stable integer for (run seed, stage name), for seeding that stage's generators."""
    return zlib.crc32(f"{seed}:{stage}".encode()) & 0x7FFFFFFF


def read_gray(path: str) -> torch.Tensor:
    """An image file as float32 [1,H,W] in [0,1]: channel mean, then min-max per image."""
    try:
        with fsspec.open(path, "rb") as handle:
            data = handle.read()
    except (OSError, ValueError):
        raise InvalidInput(f"image {path!r} could not be read") from None
    array = read_any(data, MAX_PIXELS).array
    if array.ndim != 3:
        raise InvalidInput(f"image {path!r} is not a 2D image")
    x = torch.from_numpy(np.ascontiguousarray(array.mean(axis=0, keepdims=True)))
    low, high = x.min(), x.max()
    return (x - low) / (high - low) if high > low else torch.zeros_like(x)


def square(x: torch.Tensor, side: int) -> torch.Tensor:
    """[1,H,W] -> [1,side,side]: shorter side resized to `side` (antialiased), centre crop."""
    _, h, w = x.shape
    if (h, w) != (side, side):
        scale = side / min(h, w)
        size = (max(side, round(h * scale)), max(side, round(w * scale)))
        x = F.interpolate(x[None], size=size, mode="bilinear", antialias=True, align_corners=False)[
            0
        ]
        top, left = (x.shape[1] - side) // 2, (x.shape[2] - side) // 2
        x = x[:, top : top + side, left : left + side]
    return x.clamp(0.0, 1.0)


def augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    side = x.shape[-1]
    angle = float(rng.uniform(-ROTATE_DEG, ROTATE_DEG))
    shift = [round(float(rng.uniform(-SHIFT, SHIFT)) * side) for _ in range(2)]
    scale = float(rng.uniform(1 - ZOOM, 1 + ZOOM))
    out: torch.Tensor = TF.affine(
        x,
        angle=angle,
        translate=shift,
        scale=scale,
        shear=[0.0, 0.0],
        interpolation=InterpolationMode.BILINEAR,
        fill=0.0,
    )
    return out


class ImageSet(Dataset):
    """Images at `side` px, normalised to [-1,1]; augmented per (seed, epoch, index) if asked."""

    def __init__(
        self,
        paths: list[str],
        labels: np.ndarray,
        side: int,
        *,
        augment: bool,
        seed: int,
        cache: bool,
    ) -> None:
        self.paths, self.labels, self.side = paths, torch.from_numpy(labels), side
        self.augment, self.seed, self.epoch = augment, seed, 0
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def pixels(self, i: int) -> torch.Tensor:
        if self._cache is not None and i in self._cache:
            return self._cache[i].float().div(255.0)
        x = square(read_gray(self.paths[i]), self.side)
        if self._cache is not None:
            self._cache[i] = x.mul(255.0).round().to(torch.uint8)
            return self._cache[i].float().div(255.0)
        return x

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pixels(i)
        if self.augment:
            x = augment(x, np.random.default_rng([self.seed, self.epoch, i]))
        return (x - 0.5) / 0.5, self.labels[i]


class TensorSet(Dataset):
    """Pre-loaded inputs (latents) [N,C,h,w] with labels; nothing random."""

    def __init__(self, inputs: torch.Tensor, labels: np.ndarray) -> None:
        self.inputs, self.labels = inputs, torch.from_numpy(labels)

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def set_epoch(self, epoch: int) -> None:
        pass

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[i], self.labels[i]


class Concat(Dataset):
    """Two datasets as one (mixed strategy: real then synthetic indices, shuffled together)."""

    def __init__(self, first: Dataset, second: Dataset) -> None:
        self.first, self.second = first, second
        self.split = len(first)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.split + len(self.second)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        for part in (self.first, self.second):
            part.set_epoch(epoch)  # type: ignore[attr-defined]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.first[i] if i < self.split else self.second[i - self.split]


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's batches: a seeded permutation, full batches only (BatchNorm needs > 1)."""
    order = np.random.default_rng([seed, epoch]).permutation(n).tolist()
    if n <= batch_size:
        return [order]
    return [order[k : k + batch_size] for k in range(0, n - batch_size + 1, batch_size)]


def loader(dataset: Dataset, batches: list[list[int]], workers: int, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)  # keeps the global torch RNG untouched
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        generator=generator,
        pin_memory=torch.cuda.is_available(),
    )


def ordered_batches(n: int, batch_size: int) -> Iterator[list[int]]:
    for k in range(0, n, batch_size):
        yield list(range(k, min(n, k + batch_size)))
