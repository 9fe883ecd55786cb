"""The classifier: MONAI's DenseNet (DenseNet-121 by default), one input channel, one logit per label.

For latents the stem changes and nothing else. DenseNet's stem (7x7 conv stride 2, then 3x3
max-pool stride 2: monai/networks/nets/densenet.py, `conv0` and `pool0`) downsizes the image
4x before the first dense block; a MedVAE latent is already downsized 4x (or 8x) by the
encoder, so the latent model replaces the stem with a 3x3 stride-1 conv and no pool. A 4x
latent of a 224 px image then enters the dense blocks at 56x56, exactly where the image
model's features are: same blocks, same transitions, same head, same parameter count but the
stem's.
"""

from __future__ import annotations

from typing import Any

import fsspec
import torch
from torch import nn

from core.errors import InvalidInput
from workers.training.params import ModelOptions


def build(options: ModelOptions, n_labels: int, in_channels: int = 1, latent: bool = False) -> nn.Module:
    """A freshly initialised classifier (torch's global RNG: seed it first)."""
    from monai.networks.nets import DenseNet, DenseNet121

    if options.arch == "densenet121":
        model: nn.Module = DenseNet121(spatial_dims=2, in_channels=in_channels,
                                       out_channels=n_labels, dropout_prob=options.dropout)  # fmt: skip
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
    if latent:
        stem = nn.Conv2d(in_channels, features, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(stem.weight)
        model.features.conv0 = stem
        model.features.pool0 = nn.Identity()
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
        raise InvalidInput(f"model checkpoint {url!r} shares no weights with {type(model).__name__}")
    model.load_state_dict(usable, strict=False)
    return {"loaded": len(usable), "skipped": sorted(set(raw) - set(usable))[:20]}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
