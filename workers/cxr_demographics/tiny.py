"""Random same-layout demographic classifiers, in the released file formats.

- sex: a Lightning-style checkpoint (`state_dict` with `model.` keys, `epoch`, `global_step`,
  `pytorch-lightning_version`) of torchvision's BasicBlock ResNet with `fc = Linear(512, 2)`.
- race: a `DataParallel` state dict (`module.` keys) of the ResNet with the LogSoftmax head.
- age: a TorchScript SENet regressor (`senet.py`).
Tiny builds have fewer ResNet blocks per stage (`tiny.layers`) and a narrow SENet; full-size
builds are ResNet-34 and SENet-154, with random weights (for benchmarks).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from core.errors import InvalidInput
from model_store.manifest import Manifest
from workers.cxr_demographics.contract import NATIVE_SIZE, RESNET34_LAYERS, Options, Tiny
from workers.cxr_demographics.model import PREFIX, resnet
from workers.cxr_demographics.senet import senet_regressor

LIGHTNING_VERSION = "2.5.3"  # the version RoentGen-v2's requirements pin


def write_resnet(net: torch.nn.Module, kind: str, path: Path) -> None:
    """Save a sex or race ResNet in its released container."""
    state = {PREFIX[kind] + k: v for k, v in net.state_dict().items()}
    if kind == "sex":
        torch.save({"state_dict": state, "epoch": 0, "global_step": 0,
                    "pytorch-lightning_version": LIGHTNING_VERSION}, path)  # fmt: skip
    else:
        torch.save(state, path)


def write_age(net: torch.nn.Module, path: Path, side: int = NATIVE_SIZE) -> None:
    """Save the age regressor as TorchScript (traced at the models' native resolution)."""
    net = net.eval()
    with warnings.catch_warnings(), torch.no_grad():  # deprecated, but the released format
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(net, torch.zeros(2, 3, side, side), check_trace=False)
        torch.jit.save(traced, str(path))


def plant(last: torch.nn.Module, bias: list[float] | None) -> None:
    """Zero the last Linear's weights and set its bias (a constant prediction), if asked."""
    if bias is None:
        return
    linear = last if isinstance(last, torch.nn.Linear) else last[0]
    if linear.bias is None or linear.bias.numel() != len(bias):
        raise InvalidInput(f"tiny.head_bias needs {linear.out_features} values")
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor(bias))


def build(manifest: Manifest, target: Path, full_size: bool = False, seed: int = 0) -> None:
    options = Options.model_validate(manifest.adapter)
    tiny = Tiny.model_validate(manifest.tiny)
    torch.manual_seed(seed)
    path = target / options.weights_file
    if options.kind == "age":
        if full_size:
            net = senet_regressor()
        else:
            net = senet_regressor(tuple(tiny.layers), tiny.senet_width, tiny.senet_groups, 4,
                                  tiny.head_features)  # fmt: skip
        plant(net[-1][-1], tiny.head_bias)
        write_age(net, path, NATIVE_SIZE if full_size else 64)
        return
    layers = RESNET34_LAYERS if full_size else tuple(tiny.layers)
    net = resnet(layers, options.kind)
    plant(net.fc, tiny.head_bias)
    write_resnet(net, options.kind, path)
