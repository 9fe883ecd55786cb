"""SENet with a fastai-style regression head: the architecture behind torchxrayvision's age model.

torchxrayvision ships RIKEN's age model as a TorchScript file (its graph travels with the
weights), so serving never builds this class: `tiny.py` uses it to write same-layout random
models. Facts: SENet-154 (Hu et al.; Cadene's pretrainedmodels `senet154`): a 3x3 stem of
64-64-128 channels with a ceil-mode max pool, SE bottlenecks of groups 64 and SE reduction 16,
[3, 8, 36, 3] blocks of 64/128/256/512 planes (output 4x planes), 1x1 downsampling in stage 1
and 3x3 in stages 2-4. RIKEN trained it with fastai v1, whose default head is concat
(avg + max) pooling, BatchNorm1d, dropout, Linear(4096, 512), ReLU, BatchNorm1d, dropout,
Linear(512, 1) (fastai v1 `create_head`; the head's details are not verified against the file).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, max(channels // reduction, 1), 1)
        self.fc2 = nn.Conv2d(max(channels // reduction, 1), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.fc2(torch.relu(self.fc1(self.pool(x)))))
        return x * weights


class Bottleneck(nn.Module):
    """SENet-154's block: 1x1 to 2p, grouped 3x3 to 4p, 1x1 to 4p, SE, residual."""

    def __init__(self, inplanes: int, planes: int, groups: int, reduction: int, stride: int,
                 downsample: nn.Module | None) -> None:  # fmt: skip
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes * 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes * 2)
        self.conv2 = nn.Conv2d(planes * 2, planes * 4, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(planes * 4)
        self.conv3 = nn.Conv2d(planes * 4, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.se = SqueezeExcite(planes * 4, reduction)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.se(out) + residual)


class ConcatPool(nn.Module):
    """fastai's AdaptiveConcatPool2d: max and average pooling side by side."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [nn.functional.adaptive_max_pool2d(x, 1), nn.functional.adaptive_avg_pool2d(x, 1)]
        return torch.flatten(torch.cat(pooled, dim=1), 1)


def _stage(inplanes: int, planes: int, blocks: int, groups: int, reduction: int, stride: int,
           kernel: int) -> nn.Sequential:  # fmt: skip
    downsample = nn.Sequential(
        nn.Conv2d(inplanes, planes * 4, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(planes * 4),
    )
    layers = [Bottleneck(inplanes, planes, groups, reduction, stride, downsample)]
    layers += [Bottleneck(planes * 4, planes, groups, reduction, 1, None) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def senet_regressor(
    layers: tuple[int, ...] = (3, 8, 36, 3),
    width: int = 64,
    groups: int = 64,
    reduction: int = 16,
    head_features: int = 512,
) -> nn.Sequential:
    """SENet body + fastai head with one output (defaults: SENet-154, the released size)."""
    stem = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, width, 3, 2, 1, bias=False)), ("bn1", nn.BatchNorm2d(width)),
        ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(width, width, 3, 1, 1, bias=False)), ("bn2", nn.BatchNorm2d(width)),
        ("relu2", nn.ReLU()),
        ("conv3", nn.Conv2d(width, width * 2, 3, 1, 1, bias=False)),
        ("bn3", nn.BatchNorm2d(width * 2)), ("relu3", nn.ReLU()),
        ("pool", nn.MaxPool2d(3, stride=2, ceil_mode=True)),
    ]))  # fmt: skip
    stages, inplanes = [], width * 2
    for index, blocks in enumerate(layers):
        planes = width * 2**index
        stride, kernel = (1, 1) if index == 0 else (2, 3)
        stages.append(_stage(inplanes, planes, blocks, groups, reduction, stride, kernel))
        inplanes = planes * 4
    head = nn.Sequential(
        ConcatPool(),
        nn.BatchNorm1d(inplanes * 2), nn.Dropout(0.25), nn.Linear(inplanes * 2, head_features),
        nn.ReLU(),
        nn.BatchNorm1d(head_features), nn.Dropout(0.5), nn.Linear(head_features, 1),
    )  # fmt: skip
    return nn.Sequential(stem, *stages, head)
