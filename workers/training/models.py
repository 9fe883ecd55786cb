"""The classifier: MONAI's DenseNet (DenseNet-121 by default), grayscale in, one logit per label.

Latents go through the same network, as MedVAE's own classification code does (it applies an
unchanged timm ResNet-50 / MONAI SEResNet-152 to latents, only `in_chans` changes:
configs/model/default.yaml, configs/model/monai_seresnet152.yaml); the smaller input is
where the throughput gain comes from. One change where a latent is too small: DenseNet's
stem (7x7 conv stride 2, then 3x3 max-pool stride 2: monai/networks/nets/densenet.py `conv0`,
`pool0`) and its transitions (2x2 average pools) would leave the last dense block under 2x2
positions, where its 3x3 convolutions see only padding. Then the stem's downsampling is
dropped stage by stage (first the max-pool, then the conv's stride, the conv becoming 3x3)
until the last block sees at least 2x2: e.g. DenseNet-121 keeps the full stem on a 64x64
latent, drops the pool on 56x56 (4x latent of 224 px) and both on 28x28 (8x latent).
`inputs.latent_stem` picks the stem (torch-free, so the submit check can refuse a latent too
small for any); `build(stem=...)` applies it.
"""

from __future__ import annotations

from typing import Any

import fsspec
import torch
from torch import nn

from core.errors import InvalidInput
from workers.training.params import ModelOptions


def build(
    options: ModelOptions, n_labels: int, in_channels: int = 1, stem: str = "full"
) -> nn.Module:
    """A freshly initialised classifier (torch's global RNG: seed it first)."""
    from monai.networks.nets import DenseNet, DenseNet121

    if options.arch == "densenet121":
        model: nn.Module = DenseNet121(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=n_labels,
            dropout_prob=options.dropout,
        )
        features = 64
    else:
        model = DenseNet(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=n_labels,
            init_features=options.init_features,
            growth_rate=options.growth_rate,
            block_config=tuple(options.block_config),
            dropout_prob=options.dropout,
        )
        features = options.init_features
    stages: Any = model.features
    if stem != "full":
        stages.pool0 = nn.Identity()
    if stem == "none":
        conv = nn.Conv2d(in_channels, features, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(conv.weight)
        stages.conv0 = conv
    return model


def load_initial(model: nn.Module, url: str) -> dict[str, Any]:
    """Copy weights of matching name and shape from a state dict file (a different head is
    skipped, so a checkpoint with other labels still initialises the backbone)."""
    try:
        with fsspec.open(url, "rb") as handle:
            raw = torch.load(handle, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InvalidInput(f"model checkpoint {url!r} not found") from None
    except Exception:
        raise InvalidInput(f"model checkpoint {url!r} is not a torch state dict") from None
    if isinstance(raw, dict):
        for key in ("state_dict", "model"):
            if isinstance(raw.get(key), dict):
                raw = raw[key]
    if not isinstance(raw, dict):
        raise InvalidInput(f"model checkpoint {url!r} holds no state dict")
    own = model.state_dict()
    usable = {k: v for k, v in raw.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not usable:
        raise InvalidInput(
            f"model checkpoint {url!r} shares no weights with {type(model).__name__}"
        )
    model.load_state_dict(usable, strict=False)
    return {"loaded": len(usable), "skipped": sorted(set(raw) - set(usable))[:20]}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
