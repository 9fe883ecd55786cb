"""Merlin's image encoder: a torchvision Bottleneck ResNet inflated to 3D (I3D).

Same geometry and parameter names as the released `merlin.models.i3res.I3ResNet`, so its
checkpoints load key for key: the stem conv becomes (3,7,7) with stride (1,2,2), each 3x3 conv
becomes 3x3x3 with the block's stride on the slice axis too, 1x1 convs stay 1x1x1; 2D weights go
into the middle slice (zeros elsewhere). Heads are 1x1x1 convs on the pooled 2048-d features:
`classifier` (1692 phenotypes, or 6 for five-year prediction) and `contrastive_head` (512).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

FEATURE_DIM = 2048
CONTRASTIVE_DIM = 512
RESNET152_LAYERS = (3, 8, 36, 3)


def resnet2d(layers: Sequence[int] = RESNET152_LAYERS, width_per_group: int = 64) -> ResNet:
    """A randomly initialised torchvision Bottleneck ResNet (ResNet-152 by default)."""
    if tuple(layers) == RESNET152_LAYERS and width_per_group == 64:
        from torchvision.models import resnet152

        return resnet152(weights=None)
    return ResNet(Bottleneck, list(layers), width_per_group=width_per_group)


def inflate_conv(conv: nn.Conv2d, time_dim: int, time_padding: int = 0, time_stride: int = 1):
    """Conv2d -> Conv3d with the slice axis first; the 2D kernel in the middle slice."""
    if conv.kernel_size[0] == 7:  # the stem, whatever the arguments (as released)
        kernel, padding, stride = (3, 7, 7), (1, 3, 3), (1, 2, 2)
    else:
        kernel = (time_dim, *conv.kernel_size)
        padding = (time_padding, *conv.padding)
        stride = (time_stride, conv.stride[0], conv.stride[0])
    out = nn.Conv3d(
        conv.in_channels,
        conv.out_channels,
        kernel,
        stride=stride,
        padding=padding,
        dilation=(1, *conv.dilation),
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        out.weight.zero_()
        out.weight[:, :, kernel[0] // 2] = conv.weight
        if conv.bias is not None:
            out.bias.copy_(conv.bias)
    return out


def inflate_batch_norm(bn: nn.BatchNorm2d) -> nn.BatchNorm3d:
    out = nn.BatchNorm3d(bn.num_features, eps=bn.eps, momentum=bn.momentum)
    out.load_state_dict(bn.state_dict())
    return out


def inflate_pool(pool: nn.Module) -> nn.Module:
    if isinstance(pool, nn.AdaptiveAvgPool2d):
        return nn.AdaptiveAvgPool3d((1, 1, 1))
    return nn.MaxPool3d(
        (3, pool.kernel_size, pool.kernel_size),
        stride=(2, pool.stride, pool.stride),
        padding=(1, pool.padding, pool.padding),
        dilation=(1, pool.dilation, pool.dilation),
        ceil_mode=pool.ceil_mode,
    )


class Bottleneck3d(nn.Module):
    """One inflated Bottleneck block (conv1/bn1, conv2/bn2, conv3/bn3, optional downsample)."""

    def __init__(self, block: Bottleneck) -> None:
        super().__init__()
        stride = block.conv2.stride[0]
        self.conv1 = inflate_conv(block.conv1, time_dim=1)
        self.bn1 = inflate_batch_norm(block.bn1)
        self.conv2 = inflate_conv(block.conv2, time_dim=3, time_padding=1, time_stride=stride)
        self.bn2 = inflate_batch_norm(block.bn2)
        self.conv3 = inflate_conv(block.conv3, time_dim=1)
        self.bn3 = inflate_batch_norm(block.bn3)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if block.downsample is not None:
            conv, bn = block.downsample[0], block.downsample[1]
            self.downsample = nn.Sequential(
                inflate_conv(conv, time_dim=1, time_stride=stride), inflate_batch_norm(bn)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def inflate_layer(layer: nn.Sequential) -> nn.Sequential:
    return nn.Sequential(*(Bottleneck3d(block) for block in layer))


class I3ResNet(nn.Module):
    """Inflated ResNet body plus Merlin's two 1x1x1 heads (heads=False: body only)."""

    def __init__(self, resnet: ResNet, class_nb: int = 1692, heads: bool = True) -> None:
        super().__init__()
        self.conv1 = inflate_conv(resnet.conv1, time_dim=3, time_padding=1)
        self.bn1 = inflate_batch_norm(resnet.bn1)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = inflate_pool(resnet.maxpool)
        self.layer1 = inflate_layer(resnet.layer1)
        self.layer2 = inflate_layer(resnet.layer2)
        self.layer3 = inflate_layer(resnet.layer3)
        self.layer4 = inflate_layer(resnet.layer4)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.class_nb = class_nb
        if heads:
            self.classifier = nn.Conv3d(FEATURE_DIM, class_nb, kernel_size=1, bias=True)
            self.contrastive_head = nn.Conv3d(FEATURE_DIM, CONTRASTIVE_DIM, kernel_size=1)

    @staticmethod
    def to_slices_first(x: torch.Tensor) -> torch.Tensor:
        """[B,1,H,W,D] (MONAI order) -> [B,3,D,H,W]: slices first, the channel repeated 3x."""
        x = x.permute(0, 1, 4, 2, 3)
        return torch.cat((x, x, x), dim=1)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """[B,1,H,W,D] -> layer4 output [B,2048,D/16,H/32,W/32]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.to_slices_first(x)))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B,1,H,W,D] -> pooled image features [B,2048] (the released ImageEmbedding)."""
        return self.avgpool(self.feature_map(x)).flatten(1)

    def heads(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled [B,2048] -> (contrastive [B,512], class logits [B,class_nb])."""
        x = pooled[:, :, None, None, None]
        return self.contrastive_head(x).flatten(1), self.classifier(x).flatten(1)


def body_shape(state: dict[str, torch.Tensor], prefix: str) -> tuple[tuple[int, ...], int]:
    """(blocks per layer, width_per_group) of the Bottleneck ResNet a state dict was saved from."""
    layers = []
    for index in range(1, 5):
        head = f"{prefix}layer{index}."
        blocks = {k[len(head) :].split(".", 1)[0] for k in state if k.startswith(head)}
        layers.append(len(blocks))
    first = state.get(f"{prefix}layer1.0.conv1.weight")
    width = int(first.shape[0]) if first is not None else 0
    return tuple(layers), width
