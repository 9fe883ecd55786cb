"""The three released classifiers, built without any download and loaded from the store folder.

torchxrayvision's constructors download their weights, so the models are assembled here the
way those constructors assemble them, from the store's files, and wrapped in torchxrayvision's
own classes (created without running their `__init__`), so their `forward` (channel repeat,
resize to 320, [-1024, 1024] -> ImageNet normalisation) is the package's code, not a copy.

- sex: torchvision's ResNet-34 with `fc = Linear(512, 2)`, from a PyTorch Lightning
  checkpoint (`state_dict` keys prefixed `model.`), as RoentGen-v2's `sex_model.py` defines it.
- race: `RaceModel`: ResNet-34 with `fc = Sequential(Linear(512, 3), LogSoftmax(dim=1))`; the
  released file is a `DataParallel` state dict (keys prefixed `module.`).
- age: `AgeModel`: a TorchScript SENet-154 (`torch.jit.load`).
The ResNet stage depths are read from the weights, so tiny builds load through the same code;
pulled weights must be ResNet-34's (3, 4, 6, 3).
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from core.errors import WeightsUnavailable
from workers.cxr_demographics.contract import CLASSES, RESNET34_LAYERS, Options

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PREFIX = {"sex": "model.", "race": "module."}


def resnet(layers: tuple[int, ...], kind: str) -> ResNet:
    """torchvision's ResNet of BasicBlocks (ResNet-34 at 3, 4, 6, 3) with the kind's head."""
    net = ResNet(BasicBlock, list(layers))
    classes = len(CLASSES[kind])
    net.fc = nn.Linear(512, classes)
    if kind == "race":
        net.fc = nn.Sequential(nn.Linear(512, classes), nn.LogSoftmax(dim=1))
    return net


def stage_depths(state: dict[str, Any]) -> tuple[int, ...]:
    """Blocks per stage from state-dict keys `layerN.I....`."""
    depth = [0, 0, 0, 0]
    for key in state:
        found = re.match(r"layer([1-4])\.(\d+)\.", key)
        if found:
            stage = int(found.group(1)) - 1
            depth[stage] = max(depth[stage], int(found.group(2)) + 1)
    return tuple(depth)


def read_checkpoint(path: Path, trusted: bool) -> Any:
    """`torch.load` without code execution; pickled objects only from locked (pulled) files."""
    if not path.is_file():
        raise WeightsUnavailable(
            f"{path.name} is missing from {path.parent}: put the released file there "
            "(`medserve models import <model> <file>`) or build a tiny model"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not trusted:
            raise WeightsUnavailable(
                f"{path.name} holds pickled objects; only imported (locked) weights may"
            ) from None
        return torch.load(path, map_location="cpu", weights_only=False)


def load_resnet(path: Path, kind: str, pulled: bool) -> ResNet:
    """The sex or race ResNet with the released weights (strict: every key must match)."""
    raw = read_checkpoint(path, trusted=pulled)
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict):
        raise WeightsUnavailable(f"{path.name} is not a state dict or a Lightning checkpoint")
    prefix = PREFIX[kind]
    state = {k.removeprefix(prefix): v for k, v in state.items()}
    layers = stage_depths(state)
    if pulled and layers != RESNET34_LAYERS:
        raise WeightsUnavailable(f"{path.name} is not a ResNet-34 ({layers} blocks per stage)")
    if min(layers) < 1:
        raise WeightsUnavailable(f"{path.name} has no ResNet stages (keys `layer1.0...`)")
    net = resnet(layers, kind)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise WeightsUnavailable(f"{path.name} does not fit the {kind} model: {first}") from None
    return net.eval()


def _without_init(cls: type[nn.Module], **attributes: Any) -> nn.Module:
    """An instance of a torchxrayvision model class whose constructor would download weights:
    the same attributes its `__init__` sets, taken from the store instead."""
    model = cls.__new__(cls)
    nn.Module.__init__(model)
    for name, value in attributes.items():
        setattr(model, name, value)
    return model.eval()


def _normalise() -> nn.Module:
    from torchvision.transforms import Normalize

    return Normalize(IMAGENET_MEAN, IMAGENET_STD)


def load_model(folder: Path, options: Options, pulled: bool, device: str) -> nn.Module:
    """The kind's model on `device`, in eval mode."""
    path = folder / options.weights_file
    if options.kind == "sex":
        return load_resnet(path, "sex", pulled).to(device)
    if options.kind == "race":
        from torchxrayvision.baseline_models.emory_hiti import RaceModel

        net = load_resnet(path, "race", pulled)
        model = _without_init(
            RaceModel, model=net, targets=list(RaceModel.targets), norm=_normalise(),
            weights_filename_local=str(path),
        )  # fmt: skip
        return model.to(device)
    from torchxrayvision.baseline_models.riken import AgeModel

    if not path.is_file():
        read_checkpoint(path, trusted=False)  # raises the missing-file message
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated; it is the released format
            warnings.simplefilter("ignore", FutureWarning)
            scripted = torch.jit.load(str(path), map_location=device)
    except RuntimeError as exc:
        raise WeightsUnavailable(f"{path.name} is not a TorchScript file ({exc})") from None
    model = _without_init(
        AgeModel, model=scripted, norm=_normalise(), weights_filename_local=str(path)
    )
    return model.to(device)
